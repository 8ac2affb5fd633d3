"""W&B: run id from the run id (resume continues it), main process only, one runs folder that
`wandb sync` finds, nested model config, per-example eval table, the record's extra.wandb."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.wandb_file import run_config

from rvpo_repro import tracking
from rvpo_repro.evals.base import EvalResult, metric
from rvpo_repro.tracking import RANK_ENV, wandb_id, wandb_run


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    for name in RANK_ENV:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------------- ids and ranks
def test_wandb_id_is_the_run_id_when_legal_and_a_stable_legal_id_otherwise():
    rid = "tiny-toy_constraints-rvpo-s0-5d7d9466"
    assert wandb_id(rid) == rid
    for odd in ["a/b:c#d?e%f;g,h'i", "x" * 200, "model/with spaces-s0-1234abcd"]:
        wid = wandb_id(odd)
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", wid), wid
        assert wid == wandb_id(odd)  # deterministic
    assert wandb_id("x" * 200) != wandb_id("x" * 199 + "y")  # the hash keeps long ids apart
    with pytest.raises(ValueError, match="empty"):
        wandb_id("")


def test_rank_comes_from_the_launcher_environment(monkeypatch):
    assert tracking.process_rank() == 0 and tracking.is_main_process()
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "3")  # node 2's first process: global rank wins over the local one
    assert tracking.process_rank() == 3 and not tracking.is_main_process()
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    assert tracking.process_rank() == 2
    monkeypatch.setenv("RANK", "seven")
    with pytest.raises(ValueError, match="RANK='seven'"):
        tracking.process_rank()


def test_only_the_main_process_opens_a_run(tmp_path, monkeypatch, compose_cfg):
    monkeypatch.setenv("RANK", "1")
    with wandb_run(compose_cfg(), "run-a", {"x": 1}) as run:
        assert run is None
    assert not (tmp_path / "wandb").exists()


# ------------------------------------------------------------------------- resume, folder, sync
def test_a_resumed_job_continues_its_wandb_run_in_one_known_folder(tmp_path, compose_cfg):
    import wandb

    from rvpo_repro.run.evaluation import save_result
    from rvpo_repro.run.record import load_record, new_record, run_id, utc_now

    cfg = compose_cfg()
    assert cfg.logger.dir == str(tmp_path)  # every job's W&B runs land in <root>/wandb
    rid = run_id(cfg)
    ids = []
    for attempt in range(2):  # the first job is cut short, the second resumes it
        with wandb_run(cfg, rid, {"attempt": attempt}) as run:
            ids.append(run.id)
            run.log({"x": attempt})
            if attempt == 1:
                result = EvalResult(
                    {"rewards/a": metric(0.5, None, 2)},
                    [{"id": "e0", "a": 1.0, "completion": "hi"}, {"id": "e1", "a": 0.0, "completion": "yo"}],
                    {"rewards/a": "a"},
                    primary="rewards/a",
                )
                record = new_record(cfg, result.metrics, started_at=utc_now())
                save_result(tmp_path / "rec", record, result, run)
        assert wandb.run is None
    assert ids == [rid, rid]
    folders = sorted((tmp_path / "wandb").glob("offline-run-*"))
    # two starts within one second share a timestamp: W&B then suffixes the second folder (-1)
    assert len(folders) == 2 and all(re.search(rf"-{re.escape(rid)}(-\d+)?$", f.name) for f in folders)

    extra = load_record(tmp_path / "rec").extra["wandb"]
    assert extra == {
        "id": rid,
        "path": f"{cfg.logger.project}/{rid}",
        "url": None,  # offline: the URL exists once `make wandb-sync` uploaded the run
        "mode": "offline",
        "dir": str(folders[1]),
    }

    # `make wandb-sync` syncs that folder: wandb finds both parts of the one run there.
    wandb_cli = Path(sys.executable).parent / "wandb"
    out = subprocess.run(
        [str(wandb_cli), "sync", "--dry-run", str(tmp_path / "wandb")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    listed = out.stdout + out.stderr
    assert out.returncode == 0, listed
    files = {Path(w).resolve() for w in re.findall(r"(\S+\.wandb)\s*$", listed, re.M)}
    assert files == {(f / f"run-{rid}.wandb").resolve() for f in folders}, listed


def test_logger_run_id_overrides_the_derived_id(tmp_path, compose_cfg):
    with wandb_run(compose_cfg("logger.run_id=fresh-1"), "run-a", {}) as run:
        assert run.id == "fresh-1"


@pytest.mark.parametrize("asked", [False, True])
def test_trl_profiling_timings_stay_out_of_the_summary_unless_asked(tmp_path, asked, compose_cfg):
    import wandb

    cfg = compose_cfg(f"logger.profiling={str(asked).lower()}")
    at_finish = {}
    with wandb_run(cfg, f"run-prof-{asked}", {}) as run:
        run.log({"train/global_step": 1, "train/loss": 0.5})
        wandb.log({"profiling/Time taken: Trainer.compute_loss": 0.25})  # as trl.extras.profiling logs
        finish = run.finish
        run.finish = lambda **kw: (at_finish.update(dict(run.summary)), finish(**kw))
    assert at_finish["train/loss"] == 0.5
    assert ("profiling/Time taken: Trainer.compute_loss" in at_finish) is asked


# ----------------------------------------------------------------------------------- eval table
def test_eval_table_has_prompt_completion_score_and_sub_scores():
    result = EvalResult(
        {"x/score": metric(0.75, None, 2)},
        [
            {"id": "q0", "score_col": 1.0, "axis:a": 0.5, "ok": True, "note": "text"},
            {"id": "q1", "score_col": 0.5, "axis:a": None, "ok": False, "note": "more"},
        ],
        {"x/score": "score_col"},
        primary="x/score",
    )
    prompts = [[{"role": "user", "content": "hi?"}], [{"role": "user", "content": "yo?"}]]
    generations = [["hello"], ["hey"]]
    columns, rows = tracking.eval_table(result, prompts, generations)
    assert columns == ["id", "prompt", "completion", "score", "axis:a", "ok"]
    assert rows[0] == ["q0", "user: hi?", "hello", 1.0, 0.5, True]
    assert rows[1] == ["q1", "user: yo?", "hey", 0.5, None, False]
    assert tracking.log_eval_table(result, prompts, generations) is False  # no run open: nothing


# ------------------------------------------------------------------------- model config nesting
def test_hf_model_config_is_nested_in_the_wandb_config(tmp_path, tiny_model_dir, compose_cfg):
    from transformers import AutoModelForCausalLM, TrainerState
    from trl import GRPOConfig

    from rvpo_repro.callbacks import ARGS_KEY, MODEL_CONFIG_KEY, NestedWandbCallback

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    args = GRPOConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="wandb", learning_rate=3e-4)
    cfg = compose_cfg()
    with wandb_run(cfg, "nest-1", {"aggregator": {"name": "rvpo"}}) as run:
        NestedWandbCallback().setup(args, TrainerState(), model)
        live = run.config.as_dict()  # what the client holds and sends
        run_file = next(Path(run.dir).parent.glob("run-*.wandb"))
    model_keys = set(model.config.to_dict())
    for config in (live, run_config(run_file)):  # in the process, then as W&B recorded it
        assert not model_keys & set(config), sorted(model_keys & set(config))
        assert config[MODEL_CONFIG_KEY]["num_hidden_layers"] == model.config.num_hidden_layers
        assert config[ARGS_KEY]["learning_rate"] == 3e-4 and "learning_rate" not in config
        assert config["aggregator"] == {"name": "rvpo"} and "model/num_parameters" in config


# ------------------------------------------------------------------------------ completions table
def test_completions_table_option_reaches_grpo_config(tmp_path, compose_cfg):
    from rvpo_repro.config import grpo_config

    default = grpo_config(compose_cfg(), str(tmp_path / "ckpt"), "none")
    assert default.log_completions is False and default.disable_tqdm is False
    cfg = compose_cfg("trainer.log_completions=true", "trainer.num_completions_to_print=2")
    args = grpo_config(cfg, str(tmp_path / "ckpt"), "wandb")
    assert args.log_completions is True and args.num_completions_to_print == 2
