"""Every aggregator of the suite's registry as a verl advantage estimator.

verl's estimator registry (`verl.trainer.ppo.core_algos.register_adv_est`) hands a custom estimator
the summed token-level reward only; its trainer's `compute_advantage` passes the per-channel reward
data (`non_tensor_batch`, `batch`) to its own `gdpo` alone. `install()` (idempotent) therefore:

1. registers each aggregator under its suite name, or `rvpo_repro_<name>` where verl already owns
   the name (`grpo`, `gdpo`: verl's stay);
2. wraps verl's `compute_advantage` so that for these estimators, and only these, the call also
   carries the batch (`non_tensor_batch`, `batch`), the training progress (the calling trainer's
   global step over its total) and the step's metrics dict; every other estimator reaches verl's
   function unchanged. The wrapper is installed only on the verl versions it was tested with.

An estimator reads what verl's GDPO reads: the channels are `algorithm.gdpo_reward_keys` (keys of
`non_tensor_batch`, from the reward function's dict; None = absent, NaN as in the suite), the
channel weights `algorithm.gdpo_reward_weights`, the groups `uid` (any row order). The method's
options are `algorithm.aggregator`, with the suite's names and checks (`build_aggregator`). A verl
GDPO recipe switches to RVPO by `algorithm.adv_estimator=rvpo` alone.

verl runs `compute_advantage` in its TaskRunner, a Ray actor: `main` (`python -m
rvpo_repro.integrations.verl <verl overrides>`) installs in the driver and, through Ray's
`worker_process_setup_hook`, in every Ray worker process, then runs verl's `main_ppo`.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from rvpo_repro.aggregators import aggregator_from_config, option_defaults
from rvpo_repro.aggregators.base import AGGREGATORS, Aggregator
from rvpo_repro.channel_metrics import channel_metrics
from rvpo_repro.rewards import RewardChannel

TESTED_VERL_VERSIONS = ("0.9.1",)
OPTIONS_KEY = "aggregator"  # algorithm.aggregator: the method's options
RENAMED_PREFIX = "rvpo_repro_"  # where verl owns a suite name
SETUP_HOOK = "rvpo_repro.integrations.verl.install"  # a path Ray workers import (not __main__)
# How far up the stack the trainer calling compute_advantage may sit (v1: _compute_advantage ->
# compute_advantage_for_multi_trajectories -> compute_advantage).
_TRAINER_FRAMES = 6


class VerlIntegrationError(ValueError):
    """A config or batch the suite's verl estimators cannot use; the message is one line."""


def check_verl_version(version: str) -> None:
    """Refuse a verl version the compute_advantage wrapper was not tested with, in one line."""
    if version not in TESTED_VERL_VERSIONS:
        raise VerlIntegrationError(
            f"verl {version} is not supported by rvpo_repro.integrations.verl; tested with verl "
            f"{', '.join(TESTED_VERL_VERSIONS)}"
        )


def estimator_names(verl_owned: Sequence[str] | set[str]) -> dict[str, str]:
    """{verl estimator name: suite aggregator name} for every registered aggregator; a name verl
    already owns gets the prefix `rvpo_repro_`."""
    owned = set(verl_owned)
    return {(RENAMED_PREFIX + n if n in owned else n): n for n in sorted(AGGREGATORS)}


def _plain(node: Any) -> Any:
    """A verl config node (DictConfig, ListConfig, BaseConfig dataclass) as plain Python."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def build_aggregator(name: str, algorithm: Any) -> Aggregator:
    """The suite aggregator `name` from verl's `algorithm` config: its options from
    `algorithm.aggregator` (checked as the suite checks its own configs), its channel weights
    from `algorithm.gdpo_reward_weights`, and verl's token whitening (`whiten: token`) as the
    default of the methods that whiten over sequences by default. The one place options are read."""
    options = _plain(algorithm.get(OPTIONS_KEY, None)) or {}
    if not isinstance(options, Mapping):
        raise VerlIntegrationError(f"algorithm.{OPTIONS_KEY} = {options!r}; expected a mapping of options")
    options = dict(options)
    if options.pop("name", name) != name:
        raise VerlIntegrationError(
            f"algorithm.{OPTIONS_KEY}.name is set; the method is algorithm.adv_estimator ({name!r})"
        )
    if options.get("use_item_weights"):
        raise VerlIntegrationError(
            f"algorithm.{OPTIONS_KEY}.use_item_weights: verl passes no per-rollout item weights"
        )
    weights = _plain(algorithm.get("gdpo_reward_weights", None))
    if weights is not None:
        if options.get("weights") is not None:
            raise VerlIntegrationError(
                f"algorithm.{OPTIONS_KEY}.weights and algorithm.gdpo_reward_weights are both set; "
                "set the channel weights in algorithm.gdpo_reward_weights, as for verl's gdpo"
            )
        options["weights"] = list(weights)
    if option_defaults(name).get("whiten") == "sequence":
        options.setdefault("whiten", "token")
    try:
        return aggregator_from_config({"name": name, **options})
    except (ValueError, TypeError) as err:
        raise VerlIntegrationError(f"algorithm.{OPTIONS_KEY}: {err}") from None


def channel_rewards(non_tensor_batch: Mapping[str, Any], keys: Sequence[str]) -> torch.Tensor:
    """(N, K) float64 rewards from the batch's per-channel columns; None (or NaN) = absent."""
    columns = []
    for key in keys:
        if key not in non_tensor_batch:
            raise VerlIntegrationError(
                f"reward key {key!r} of algorithm.gdpo_reward_keys is not in the batch's non_tensor_batch "
                f"(it has {sorted(non_tensor_batch)}); the reward function must return it in its dict "
                "(verl 0.9.1's v1 trainer passes no reward columns to compute_advantage: trainer.use_v1=false)"
            )
        column = [math.nan if v is None else float(v) for v in np.asarray(non_tensor_batch[key]).tolist()]
        columns.append(torch.tensor(column, dtype=torch.float64))
    return torch.stack(columns, dim=1)


def group_order(index: Any) -> tuple[torch.Tensor, int]:
    """uid (N,) in any row order -> (order (N,), G): rows[order] are group by group, G rows each."""
    _, codes, counts = np.unique(np.asarray(index).astype(str), return_inverse=True, return_counts=True)
    if len(set(counts.tolist())) != 1:
        raise VerlIntegrationError(
            f"groups by uid have sizes {sorted(set(counts.tolist()))}; the suite's estimators need equal "
            "groups (rollout.n rollouts of every prompt)"
        )
    return torch.from_numpy(np.argsort(codes, kind="stable")), int(counts[0])


def channel_specs(rewards: torch.Tensor, keys: Sequence[str]) -> list[RewardChannel]:
    """Channel metadata for the metrics: verl declares none, so a channel whose present values are
    all 0 or 1 in this batch counts as a binary constraint; other channels have no declared range
    and stay out of the bottleneck."""
    specs = []
    for j, key in enumerate(keys):
        col = rewards[:, j]
        col = col[~torch.isnan(col)]
        binary = bool(((col == 0) | (col == 1)).all()) and col.numel() > 0
        specs.append(
            RewardChannel(key, binary=True) if binary else RewardChannel(key, low=math.nan, high=math.nan)
        )
    return specs


def needs_progress(aggregator: Aggregator) -> bool:
    """Whether the method's advantage depends on the training progress (a risk schedule)."""
    return hasattr(aggregator, "risk_at") and aggregator.risk_at(0.0) != aggregator.risk_at(1.0)


class SuiteEstimator:
    """One suite aggregator in verl's estimator registry (verl's calling convention, plus the
    batch, progress and metrics the wrapped compute_advantage passes)."""

    def __init__(self, name: str):
        self.name = name
        self._built: dict[str, Aggregator] = {}  # by options: stateful methods keep their state

    def __repr__(self) -> str:
        return f"SuiteEstimator({self.name!r})"

    def aggregator(self, config: Any) -> Aggregator:
        key = repr((_plain(config.get(OPTIONS_KEY, None)), _plain(config.get("gdpo_reward_weights", None))))
        if key not in self._built:
            self._built[key] = build_aggregator(self.name, config)
        return self._built[key]

    def __call__(
        self,
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: Any = None,
        config: Any = None,
        non_tensor_batch: Mapping[str, Any] | None = None,
        batch: Any = None,
        progress: float | None = None,
        metrics: dict | None = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """token_level_rewards, response_mask (N, T) -> advantages, returns (N, T)."""
        if non_tensor_batch is None or config is None or index is None:
            raise VerlIntegrationError(
                f"estimator {self.name!r} was called without the batch's reward channels; call "
                f"{SETUP_HOOK}() first (it wraps verl's compute_advantage)"
            )
        keys = _plain(config.get("gdpo_reward_keys", None))
        if not keys:
            raise VerlIntegrationError(
                "algorithm.gdpo_reward_keys is not set; list the reward function's per-channel keys, as for gdpo"
            )
        agg = self.aggregator(config)
        if progress is None:
            if needs_progress(agg):
                raise VerlIntegrationError(
                    f"{self.name}'s risk schedule needs the training progress, which this verl gives "
                    "compute_advantage no trainer to read (global_steps, total_training_steps) from; "
                    f"use a constant risk (tested with verl {', '.join(TESTED_VERL_VERSIONS)})"
                )
            progress = 0.0
        rewards = channel_rewards(non_tensor_batch, keys)
        order, group = group_order(index)
        x = rewards[order]
        lengths = response_mask.sum(-1).to(torch.float64)[order] if agg.wants_lengths else None
        adv = torch.empty_like(x[:, 0])
        adv[order] = agg(x, num_generations=group, progress=progress, lengths=lengths)
        if metrics is not None:
            metrics.update(channel_metrics(agg, x, channel_specs(x, keys), group, progress))
        agg.update(x)  # stateful methods (constrained_grpo) step once per training batch
        scores = adv.to(token_level_rewards.dtype).to(response_mask.device).unsqueeze(-1) * response_mask
        return scores, scores


def trainer_step() -> tuple[float | None, dict | None]:
    """(progress, metrics) of the verl trainer calling compute_advantage: progress = (global_steps
    - 1) / total_training_steps (verl counts steps from 1, the suite from 0 done), metrics its step's
    dict; (None, None) where no caller is such a trainer.

    verl 0.9.1 passes compute_advantage neither the step nor a metrics sink; both of its trainers
    (the legacy `fit`, the v1 `_compute_advantage`) hold them in the calling frame, so they are read
    there rather than by patching the trainers too."""
    frame = sys._getframe(2)
    for _ in range(_TRAINER_FRAMES):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        steps, total = getattr(owner, "global_steps", None), getattr(owner, "total_training_steps", None)
        if isinstance(steps, int) and isinstance(total, int) and total > 0:
            metrics = frame.f_locals.get("metrics")
            return min(1.0, max(0.0, (steps - 1) / total)), metrics if isinstance(metrics, dict) else None
        frame = frame.f_back
    return None, None


def wrap_compute_advantage(original):
    """verl's compute_advantage, with the suite's estimators called on the whole batch."""
    from verl.trainer.ppo import core_algos
    from verl.trainer.ppo.ray_trainer import compute_response_mask

    signature = inspect.signature(original)

    @functools.wraps(original)
    def compute_advantage(*args: Any, **kwargs: Any):
        call = signature.bind(*args, **kwargs)
        call.apply_defaults()
        name = getattr(call.arguments["adv_estimator"], "value", call.arguments["adv_estimator"])
        estimator = core_algos.ADV_ESTIMATOR_REGISTRY.get(name)
        if not isinstance(estimator, SuiteEstimator):
            return original(*args, **kwargs)
        data = call.arguments["data"]
        if "response_mask" not in data.batch.keys():
            data.batch["response_mask"] = compute_response_mask(data)
        progress, metrics = trainer_step()
        advantages, returns = estimator(
            token_level_rewards=data.batch["token_level_rewards"],
            response_mask=data.batch["response_mask"],
            index=data.non_tensor_batch.get("uid"),
            config=call.arguments["config"],
            non_tensor_batch=data.non_tensor_batch,
            batch=data.batch,
            progress=progress,
            metrics=metrics,
        )
        data.batch["advantages"] = advantages
        data.batch["returns"] = returns
        return data

    compute_advantage.rvpo_repro_original = original
    return compute_advantage


def install() -> dict[str, str]:
    """Register every aggregator in verl and wrap its compute_advantage (idempotent); returns
    {verl estimator name: suite aggregator name}."""
    import verl
    from verl.trainer.ppo import core_algos, ray_trainer

    check_verl_version(verl.__version__)
    registry = core_algos.ADV_ESTIMATOR_REGISTRY
    owned = {n for n, fn in registry.items() if not isinstance(fn, SuiteEstimator)}
    names = estimator_names(owned)
    for verl_name, suite_name in names.items():
        if not isinstance(registry.get(verl_name), SuiteEstimator):
            core_algos.register_adv_est(verl_name)(SuiteEstimator(suite_name))
    original = ray_trainer.compute_advantage
    if not hasattr(original, "rvpo_repro_original"):
        wrapped = wrap_compute_advantage(original)
        # every verl module that bound the function by name (v1 utils, recipes) gets the wrapper;
        # modules imported later import it from ray_trainer, already wrapped
        for module in list(sys.modules.values()):
            if getattr(module, "__name__", "").startswith("verl") and (
                getattr(module, "compute_advantage", None) is original
            ):
                module.compute_advantage = wrapped
    return names


def main(argv: Sequence[str] | None = None) -> None:
    """verl's main_ppo with the suite's estimators installed in the driver and every Ray worker."""
    try:
        install()
    except VerlIntegrationError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    from verl.trainer import main_ppo

    args = list(sys.argv[1:] if argv is None else argv)
    sys.argv = [
        sys.argv[0],
        *args,
        f"++ray_kwargs.ray_init.runtime_env.worker_process_setup_hook={SETUP_HOOK}",
    ]
    main_ppo.main()


if __name__ == "__main__":
    main()
