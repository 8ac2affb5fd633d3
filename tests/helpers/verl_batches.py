"""verl DataProtos built on CPU the way verl's trainer hands them to compute_advantage, and the
suite's advantages on the same rewards, computed apart from the verl integration.

A batch: B prompts x G rollouts, rows shuffled; per-channel rewards as `non_tensor_batch` columns
(object arrays, None = absent, as a reward function's dict gives them), `uid` per row, prompts and
an attention mask covering prompt + response, a response mask of varying lengths, and the summed
reward on each response's last token (`token_level_rewards`, which the suite's estimators ignore).
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import torch

from rvpo_repro.aggregators import get_aggregator
from rvpo_repro.aggregators.base import AGGREGATORS

KEYS = ("format", "correct", "length")
PROMPT_LEN, RESPONSE_LEN = 3, 7


def channel_values(seed: int, n: int, absent: float) -> list[list[float | None]]:
    """n rows x 3 channels: format in {0, 1}, correctness in {-3, ..., 3}, a length score in
    [0, 1]; each value None (absent) with probability `absent`; row 1 has no channel at all."""
    g = torch.Generator().manual_seed(seed)
    cols = [
        torch.randint(0, 2, (n,), generator=g).double(),
        torch.randint(-3, 4, (n,), generator=g).double(),
        torch.rand(n, generator=g, dtype=torch.float64),
    ]
    drop = torch.rand(n, len(cols), generator=g) < absent
    rows = [[None if drop[i, j] else float(c[i]) for j, c in enumerate(cols)] for i in range(n)]
    if absent > 0:
        rows[1] = [None] * len(cols)
    return rows


def make_batch(seed: int = 0, groups: int = 8, group: int = 4, absent: float = 0.15, shuffle: bool = True):
    """(DataProto, rows, uids, lengths): rows[i] the channel values of row i, in the batch's order."""
    from tensordict import TensorDict
    from verl import DataProto

    n = groups * group
    rows = channel_values(seed, n, absent)
    uids = [f"prompt-{i // group}" for i in range(n)]
    g = torch.Generator().manual_seed(seed + 1)
    lengths = torch.randint(1, RESPONSE_LEN + 1, (n,), generator=g)
    if shuffle:
        perm = torch.randperm(n, generator=g).tolist()
        rows, uids, lengths = [rows[i] for i in perm], [uids[i] for i in perm], lengths[perm]
    response_mask = (torch.arange(RESPONSE_LEN) < lengths.unsqueeze(1)).long()
    total = torch.tensor([sum(v for v in r if v is not None) for r in rows], dtype=torch.float32)
    token_level = torch.zeros(n, RESPONSE_LEN)
    token_level[torch.arange(n), lengths - 1] = total
    batch = TensorDict(
        {
            "prompts": torch.ones(n, PROMPT_LEN, dtype=torch.long),
            "attention_mask": torch.cat([torch.ones(n, PROMPT_LEN, dtype=torch.long), response_mask], 1),
            "response_mask": response_mask,
            "token_level_rewards": token_level,
            "token_level_scores": token_level.clone(),
        },
        batch_size=[n],
    )
    non_tensor = {"uid": np.array(uids, dtype=object)}
    for j, key in enumerate(KEYS):
        non_tensor[key] = np.array([r[j] for r in rows], dtype=object)
    return DataProto(batch=batch, non_tensor_batch=non_tensor), rows, uids, lengths


def suite_default_options(name: str) -> dict:
    """The options the verl estimators use by default: verl's token whitening for the methods
    whose own default whitening is over sequences."""
    default = {f.name: f.default for f in fields(AGGREGATORS[name]) if f.init}.get("whiten")
    return {"whiten": "token"} if default == "sequence" else {}


def suite_advantages(aggregator, rows, uids, lengths, progress: float = 0.0) -> torch.Tensor:
    """(N,) advantages of the suite's aggregator, rows grouped by sorting on uid (the batch's
    order restored after), absent values NaN. Calls `aggregator.update` after, as a trainer does."""
    order = sorted(range(len(rows)), key=lambda i: uids[i])
    group = uids.count(uids[0])
    x = torch.tensor([[math.nan if v is None else v for v in rows[i]] for i in order], dtype=torch.float64)
    adv = aggregator(x, num_generations=group, progress=progress, lengths=lengths[order].double())
    aggregator.update(x)
    out = torch.empty_like(adv)
    out[torch.tensor(order)] = adv
    return out


def suite_aggregator(name: str, **options):
    return get_aggregator(name, **{**suite_default_options(name), **options})
