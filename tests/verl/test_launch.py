"""The launch path: verl computes advantages in its TaskRunner, a Ray actor, so the estimators must
be installed in Ray's worker processes (the setup hook `main` hands Ray), and a verl version the
wrapper was not tested with stops the launch in one line."""

from __future__ import annotations

import pytest

from rvpo_repro.integrations import verl as integration


def test_ray_workers_get_the_estimators_from_the_setup_hook():
    import ray

    ray.init(
        num_cpus=1,
        include_dashboard=False,
        runtime_env={"worker_process_setup_hook": integration.SETUP_HOOK},
    )
    try:

        @ray.remote
        def registered() -> tuple[str, bool]:
            from verl.trainer.ppo import core_algos, ray_trainer

            from rvpo_repro.integrations.verl import SuiteEstimator

            fn = core_algos.ADV_ESTIMATOR_REGISTRY.get("rvpo")
            return repr(fn), hasattr(ray_trainer.compute_advantage, "rvpo_repro_original") and isinstance(
                fn, SuiteEstimator
            )

        name, wrapped = ray.get(registered.remote())
    finally:
        ray.shutdown()
    assert name == "SuiteEstimator('rvpo')" and wrapped


def test_an_untested_verl_stops_the_launch_in_one_line(monkeypatch, capsys):
    import verl

    monkeypatch.setattr(verl, "__version__", "0.10.0")
    with pytest.raises(SystemExit) as exit_:
        integration.main(["algorithm.adv_estimator=rvpo"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "error: verl 0.10.0 is not supported by rvpo_repro.integrations.verl; tested with verl 0.9.1"
    )


def test_the_module_entry_hands_ray_an_importable_setup_hook():
    """`python -m rvpo_repro.integrations.verl` runs as __main__, which Ray workers cannot import:
    the hook must name the module by its package path (verl's config printed by Hydra's --cfg)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "rvpo_repro.integrations.verl", "--cfg", "job", "--package", "ray_kwargs"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "worker_process_setup_hook: rvpo_repro.integrations.verl.install" in out.stdout
