"""`rvpo-eval`: evaluate a saved policy on a task's eval set and write a run record.

    rvpo-eval experiment=toy checkpoint=results/runs/toy/<run-id>/model
    rvpo-eval -m experiment=toy checkpoint=a/model,b/model          # several, as a multirun

The record lands under experiment `<experiment_name>-eval`, keyed by the config hash (which
includes the checkpoint path), so it never overwrites the training run's own record.
Exit codes as `rvpo-train`'s.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from rvpo_repro.config import register_configs
from rvpo_repro.run.job import evaluate_checkpoint
from rvpo_repro.train import exit_on_known_error

__all__ = ["evaluate_checkpoint", "main"]


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def _hydra_main(cfg: DictConfig) -> None:
    exit_on_known_error(evaluate_checkpoint, cfg, "rvpo-eval")


def main() -> None:
    register_configs()
    _hydra_main()


if __name__ == "__main__":
    main()
