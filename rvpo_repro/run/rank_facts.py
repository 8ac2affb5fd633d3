"""What a training job ran under, as every rank saw it: `RankReport`, a TrainerCallback.

A launch can silently run something other than its config says (`ACCELERATE_USE_CPU=1` turns the
DeepSpeed configs into DDP; FSDP on CPU falls back to DDP), and ranks that drift apart train
different policies without an error. At the end of training each rank digests its full parameters
(gathered first under ZeRO-3, where each rank holds a shard) and reports accelerate's distributed
type, backend, ZeRO stage, mixed precision, the module's weight dtype and the dtype of the
master weights the optimizer updates; rank 0 writes all of them to
`<output_dir>/ranks.json` (`RANKS_FILE`) and logs one line, naming the ranks that disagree.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger(__name__)

RANKS_FILE = "ranks.json"


def param_digest(model: Any, zero_stage: int | None) -> str:
    """sha256 (16 hex digits) of every parameter in fp32, in named order; under ZeRO-3 the shards
    are gathered first (a collective: every rank must call this)."""
    import contextlib

    import torch

    params = [p for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0])]
    gather: Any = contextlib.nullcontext()
    if zero_stage == 3:
        import deepspeed

        gather = deepspeed.zero.GatheredParameters(params)
    h = hashlib.sha256()
    with gather, torch.no_grad():
        for p in params:
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def weights_dtype(model: Any) -> str:
    """The dtype of the module's own weights, e.g. "bfloat16"."""
    return str(next(model.parameters()).dtype).removeprefix("torch.")


def master_dtype(engine: Any, model: Any) -> str:
    """The dtype of the weights the optimizer updates: DeepSpeed's ZeRO optimizers keep their own
    flat copies (fp32 in bf16 mode, while the module holds bf16); otherwise the module's own."""
    opt = getattr(engine, "optimizer", None)
    for attr in ("single_partition_of_fp32_groups", "fp32_partitioned_groups_flat"):  # ZeRO-1/2, ZeRO-3
        groups = getattr(opt, attr, None)
        if groups:
            return str(groups[0].dtype).removeprefix("torch.")
    return weights_dtype(model)


def rank_facts(trainer: Any) -> dict[str, Any]:
    """This rank's view of the job (see the module docstring)."""
    acc = trainer.accelerator
    plugin = acc.state.deepspeed_plugin
    zero = plugin.zero_stage if plugin is not None else None
    model = acc.unwrap_model(trainer.model_wrapped)
    return {
        "rank": acc.process_index,
        "world_size": acc.num_processes,
        "distributed_type": str(acc.state.distributed_type).rsplit(".", 1)[-1],
        "backend": acc.state.backend,
        "zero_stage": zero,
        "mixed_precision": str(acc.state.mixed_precision),
        "weights_dtype": weights_dtype(model),
        "master_dtype": master_dtype(trainer.model_wrapped, model),
        "params_sha256": param_digest(model, zero),
    }


class RankReport(TrainerCallback):
    """Gather every rank's `rank_facts` at the end of training; rank 0 writes and logs them."""

    def __init__(self, trainer: Any):
        self.trainer = trainer

    def on_train_end(self, args, state, control, **kwargs):
        from accelerate.utils import gather_object

        facts = gather_object([rank_facts(self.trainer)])
        self.trainer.rank_facts = facts  # every rank's, on every rank: the run record keeps them
        if not state.is_world_process_zero:
            return
        digests = {f["params_sha256"] for f in facts}
        first = facts[0]
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(args.output_dir) / RANKS_FILE).write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
        agree = (
            "parameters equal on every rank"
            if len(digests) == 1
            else "RANKS DISAGREE: " + ", ".join(f"rank {f['rank']} {f['params_sha256']}" for f in facts)
        )
        log.info(
            "trained on %d rank(s): %s%s, backend %s, mixed precision %s over %s weights; %s",
            first["world_size"],
            first["distributed_type"],
            f" ZeRO-{first['zero_stage']}" if first["zero_stage"] else "",
            first["backend"],
            first["mixed_precision"],
            first["master_dtype"],
            agree,
        )
