"""Each aggregator's options have one home, its method's dataclass: the composed config of a method
holds its own options only (`--cfg job`), an option of another method is refused in one line
naming the method and what it accepts, and its ranges and defaults are read from the class."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from rvpo_repro.aggregators import option_defaults
from rvpo_repro.aggregators.base import AGGREGATORS
from rvpo_repro.analysis import ablation
from rvpo_repro.analysis.labels import method_label
from rvpo_repro.cli import run_hydra
from rvpo_repro.config import conf_dir

CHOICES = sorted(p.stem for p in (conf_dir() / "aggregator").glob("*.yaml"))


def _never(cfg) -> None:
    raise AssertionError("the job must not start")


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    try:
        run_hydra(_never, "train", list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def _init_fields(name: str) -> set[str]:
    return {f.name for f in fields(AGGREGATORS[name]) if f.init}


def test_every_registered_method_has_a_config_file_of_its_name():
    assert set(AGGREGATORS) <= set(CHOICES)


@pytest.mark.parametrize("choice", CHOICES)
def test_cfg_job_shows_the_methods_own_options_only(capsys, choice):
    code, out, err = _cli(capsys, "--cfg", "job", "experiment=toy", f"aggregator={choice}")
    assert code == 0, err
    agg = yaml.safe_load(out)["aggregator"]
    assert set(agg) == _init_fields(agg["name"]) | {"name"}, agg


def test_the_schema_is_made_from_the_class_with_its_defaults_and_ranges():
    for name, cls in AGGREGATORS.items():
        schema = {f.name: f for f in fields(cls.schema)}
        assert schema.pop("name").default == name
        own = {f.name: f for f in fields(cls) if f.init}
        assert {k: (f.default, dict(f.metadata)) for k, f in schema.items()} == {
            k: (f.default, dict(f.metadata)) for k, f in own.items()
        }


def test_an_option_of_another_method_is_one_line_naming_the_method_and_its_options(capsys):
    code, _, err = _cli(capsys, "--cfg", "job", "aggregator=grpo", "aggregator.risk=2")
    assert code == 2 and err.count("\n") == 1, err
    assert err == (
        "rvpo-train: aggregator.risk=2: option(s) ['risk'] do not apply to aggregator 'grpo'; "
        "it accepts ['eps', 'weights', 'use_item_weights', 'missing', 'scale']\n"
    )


def test_a_typo_is_refused_at_compose_time(capsys):
    code, _, err = _cli(capsys, "--cfg", "job", "aggregator=grpo", "aggregator.scal=batch")
    assert (
        code == 2
        and err == "rvpo-train: aggregator.scal=batch: no key 'scal' in 'aggregator'; did you mean scale?\n"
    )
    code, _, err = _cli(capsys, "--cfg", "job", "aggregator=grpo", "aggregator.zzz=1")
    assert (
        code == 2 and "do not apply to aggregator 'grpo'; it accepts ['eps'," in err and err.count("\n") == 1
    )


def test_an_out_of_range_option_run_from_the_command_line_names_the_key(capsys, tmp_path):
    from rvpo_repro.train import main

    with pytest.raises(SystemExit) as exc:
        main(["experiment=toy_smoke", "aggregator.risk=-1", f"paths.root_dir={tmp_path}", "logger=disabled"])
    assert (exc.value.code, capsys.readouterr().err) == (
        2,
        "rvpo-train: aggregator.risk=-1.0: must be >= 0\n",
    )
    assert not (tmp_path / "results").exists()


def test_defaults_and_labels_come_from_the_classes():
    assert option_defaults("grpo") == {
        "name": "grpo", "eps": 1e-4, "weights": None, "use_item_weights": False, "missing": "renormalise",
        "scale": "group",
    }  # fmt: skip
    assert ablation.default_risk() == AGGREGATORS["rvpo"](risk=None).risk == 1.0
    # an option at the method's default is not shown, whichever method declares which default
    assert method_label({"name": "gapo", "gapo_p": 1.0}) == "gapo"
    assert method_label({"name": "mgda", "gapo_p": 1.0}) == "mgda (gapo_p=1)"
    assert method_label({"name": "mo_grpo", "whiten": "none"}) == "mo_grpo"
    assert method_label({"name": "gdpo", "whiten": "none"}) == "gdpo (whiten=none)"


def test_docs_name_no_flat_aggregator_schema():
    root = Path(__file__).resolve().parents[1]
    pages = [*(root / "docs").rglob("*.md"), *(root / "rvpo_repro").rglob("*.py")]
    assert [p for p in pages if "AggregatorConfig" in p.read_text(encoding="utf-8")] == []
