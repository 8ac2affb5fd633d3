"""Planning a run, before its ranks join and before anything is written: the config is validated
once, the run is held against its GPUs (the memory plan, rvpo_repro.sizing), and what identifies
it is fixed (resolved config, hash, id, directory), with the aggregator it trains with. Each is
built once per job; every later phase reads the plan."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rvpo_repro.config import experiment_dirname, validate
from rvpo_repro.run import record as record_mod
from rvpo_repro.run.provenance import redact
from rvpo_repro.sizing.memory import check_memory
from rvpo_repro.tasks import prepare_config


@dataclass
class RunPlan:
    """What identifies one run, built once from its composed config."""

    cfg: DictConfig
    config: dict  # resolved and redacted: the record's and W&B's copy
    config_hash: str
    run_id: str
    run_dir: Path
    aggregator: Any = None  # the one `validate` built; training uses it

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "checkpoints"


def plan_run(cfg: DictConfig, train: bool = True) -> RunPlan:
    """Validate `cfg` (nothing exists yet) and fix the run's identity."""
    experiment_dirname(cfg.experiment_name)  # a name, never a path out of results/runs
    aggregator = validate(cfg, construct_trl=False)  # GRPOConfig is built once the run is not finished
    if train:  # the memory plan: a run that cannot fit its GPUs stops here
        check_memory(cfg)
    prepare_config(cfg)  # the task pins what the config alone does not fix (user code hashes)
    return RunPlan(
        cfg=cfg,
        config=redact(record_mod.resolved_config(cfg)),
        config_hash=record_mod.config_hash(cfg),
        run_id=record_mod.run_id(cfg),
        run_dir=record_mod.run_dir(cfg),
        aggregator=aggregator,
    )
