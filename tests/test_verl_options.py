"""The verl integration's options, channels and groups, without verl: the module imports no verl
until it is installed (tests/verl/ runs it through verl's own code, in the verl venv)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from rvpo_repro.aggregators.base import AGGREGATORS
from rvpo_repro.integrations.verl import (
    VerlIntegrationError,
    build_aggregator,
    channel_rewards,
    check_verl_version,
    estimator_names,
    group_order,
)


def test_importing_the_module_imports_no_verl(tmp_path):
    """A `verl` that fails on import: the suite and its verl module still import."""
    (tmp_path / "verl").mkdir()
    (tmp_path / "verl" / "__init__.py").write_text("raise ImportError('verl imported')\n")
    code = "import rvpo_repro, rvpo_repro.integrations.verl as m; print(m.TESTED_VERL_VERSIONS)"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "0.9.1" in out.stdout


def test_names_keep_verls_own_and_rename_the_suites():
    names = estimator_names({"gae", "grpo", "gdpo", "rloo"})
    assert sorted(names.values()) == sorted(AGGREGATORS)
    assert names["rvpo_repro_grpo"] == "grpo" and names["rvpo_repro_gdpo"] == "gdpo"
    assert names["rvpo"] == "rvpo" and "grpo" not in names and "gdpo" not in names


def test_options_come_from_the_subkey_with_the_suites_checks():
    agg = build_aggregator("rvpo", {"aggregator": {"risk_start": 0.5, "risk_end": 2.0}})
    assert (agg.schedule, agg.whiten) == ("linear", "token")  # verl's token whitening by default
    assert build_aggregator("rvpo", {"aggregator": {"whiten": "sequence"}}).whiten == "sequence"
    assert build_aggregator("mo_grpo", {}).whiten == "none"  # a method without whitening keeps it
    assert build_aggregator("gdpo", {"gdpo_reward_weights": [1, 2]}).weights == [1.0, 2.0]


@pytest.mark.parametrize(
    "algorithm,match",
    [
        (
            {"aggregator": {"risc": 2.0}},
            r"algorithm\.aggregator: option\(s\) \['risc'\] do not apply to aggregator 'rvpo'",
        ),
        ({"aggregator": {"schedule": "cosin"}}, r"algorithm\.aggregator: schedule = 'cosin'"),
        ({"aggregator": {"use_item_weights": True}}, "verl passes no per-rollout item weights"),
        ({"aggregator": {"weights": [1, 1]}, "gdpo_reward_weights": [1, 1]}, "both set"),
        ({"aggregator": {"name": "gdpo"}}, "the method is algorithm.adv_estimator"),
        ({"aggregator": [1]}, "expected a mapping"),
    ],
)
def test_a_bad_option_is_one_line_naming_it(algorithm, match):
    with pytest.raises(VerlIntegrationError, match=match) as err:
        build_aggregator("rvpo", algorithm)
    assert "\n" not in str(err.value)


def test_untested_verl_version_is_one_line():
    check_verl_version("0.9.1")
    with pytest.raises(
        VerlIntegrationError, match=r"verl 0\.8\.0 is not supported .* tested with verl 0\.9\.1$"
    ):
        check_verl_version("0.8.0")


def test_channels_read_none_as_absent_and_name_a_missing_key():
    batch = {"a": np.array([1.0, None, 0.0], dtype=object), "b": np.array([0.5, 0.25, None], dtype=object)}
    x = channel_rewards(batch, ["a", "b"])
    assert x.dtype == torch.float64 and x.shape == (3, 2)
    assert math.isnan(x[1, 0]) and math.isnan(x[2, 1]) and x[0].tolist() == [1.0, 0.5]
    with pytest.raises(VerlIntegrationError, match=r"reward key 'c' .* \(it has \['a', 'b'\]\)"):
        channel_rewards(batch, ["a", "c"])


def test_groups_by_uid_in_any_order():
    order, group = group_order(np.array(["q", "p", "q", "p", "r", "r"], dtype=object))
    assert group == 2 and order.tolist() == [1, 3, 0, 2, 4, 5]
    with pytest.raises(VerlIntegrationError, match=r"groups by uid have sizes \[1, 2\]"):
        group_order(np.array(["p", "p", "q"], dtype=object))
