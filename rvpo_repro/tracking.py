"""Weights & Biases run lifecycle: offline by default, always finished, secrets never logged.

- One W&B run per suite run: its id derives from the run id (`wandb_id`), and `wandb.init` is
  called with resume="allow", so a resumed job continues its W&B run (online) or writes a second
  offline folder with the same id, which `wandb sync` appends to the same run.
- Only the main process of a distributed job opens a run (`is_main_process`).
- Runs live under `<logger.dir>/wandb/` (default `<paths.root_dir>/wandb/`): one place to sync.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any

from omegaconf import OmegaConf

# Rank variables, global ranks first: torchrun / accelerate launch / the slurm_ddp launcher set
# RANK; MPI launchers (which accelerate also reads) set PMI_RANK, OMPI_COMM_WORLD_RANK or
# MV2_COMM_WORLD_RANK; srun sets SLURM_PROCID. LOCAL_RANK, last, is only the rank within a node.
RANK_ENV = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID", "LOCAL_RANK")
WANDB_ID_MAX = 64  # W&B allows longer ids; this keeps folder names and URLs readable


def process_rank() -> int:
    """Global rank of this process: torch.distributed's when it is initialised, else the first
    of RANK_ENV that is set; 0 for a single process."""
    import sys

    dist = sys.modules.get("torch.distributed")  # never import torch just to ask
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    for name in RANK_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            try:
                return int(value)
            except ValueError:
                raise ValueError(f"environment variable {name}={value!r}: expected an integer rank") from None
    return 0


def is_main_process() -> bool:
    return process_rank() == 0


def wandb_id(run_id: str) -> str:
    """A W&B run id for a suite run id: the same id for the same run (so a resumed job continues
    its W&B run), only [A-Za-z0-9._-], at most WANDB_ID_MAX characters (a longer id keeps its
    start and gains a hash of the whole)."""
    if not run_id:
        raise ValueError("run id is empty: cannot derive a W&B run id")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id).strip("._-") or "run"
    if safe == run_id and len(safe) <= WANDB_ID_MAX:
        return safe
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return f"{safe[: WANDB_ID_MAX - 9]}-{digest}"


def wandb_tags(cfg: Any) -> list[str]:
    return [
        f"model:{cfg.model.name}",
        f"task:{cfg.task.name}",
        f"aggregator:{cfg.aggregator.name}",
        f"seed:{cfg.seed}",
        *cfg.logger.tags,
    ]


def _mode(cfg: Any) -> str:
    return str(getattr(cfg.logger.mode, "value", cfg.logger.mode))


def report_to(cfg: Any) -> str:
    """TRL's `report_to` for a run: "wandb" unless logging is disabled (the same on every rank;
    transformers' W&B callback logs from the main process only)."""
    return "none" if _mode(cfg) == "disabled" else "wandb"


@contextlib.contextmanager
def wandb_run(cfg: Any, run_id: str, config: dict) -> Iterator[Any]:
    """Start (or resume) the W&B run of one job and finish it on every exit path.

    `config` must already be redacted. The run is finished with exit code 1 when the job raises,
    so a crashed job of a multirun leaves a closed run and the sweep goes on.
    Yields None when logging is disabled and in every process but the main one.
    """
    if _mode(cfg) == "disabled" or not is_main_process():
        yield None
        return
    import wandb

    os.makedirs(cfg.logger.dir, exist_ok=True)
    run = wandb.init(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        dir=cfg.logger.dir,
        mode=_mode(cfg),
        id=cfg.logger.run_id or wandb_id(run_id),
        resume="allow",
        group=cfg.experiment_name,
        name=run_id,
        tags=wandb_tags(cfg),
        config=config,
        reinit="finish_previous",
    )
    try:
        yield run
    except BaseException:
        drop_profiling_summary(run, cfg)
        run.finish(exit_code=1)
        raise
    else:
        drop_profiling_summary(run, cfg)
        run.finish()


PROFILING_PREFIX = "profiling/"  # TRL's per-call timings (trl.extras.profiling), logged to W&B directly


def drop_profiling_summary(run: Any, cfg: Any) -> list[str]:
    """Remove TRL's `profiling/...` keys from the run summary (their history stays) unless
    `logger.profiling` asks for them: a summary shows what the run learnt, not how long one call took.
    Returns the keys removed."""
    if bool(OmegaConf.select(cfg, "logger.profiling", default=False)):
        return []
    keys = [k for k in list(run.summary.keys()) if str(k).startswith(PROFILING_PREFIX)]
    for k in keys:
        del run.summary[k]
    return keys


def wandb_info(run: Any) -> dict | None:
    """What a run record keeps of its W&B run (record.extra["wandb"]); None without a run.

    `path` is entity/project/id online and project/id offline; `url` is None offline (the run
    gets one when `make wandb-sync` uploads it); `dir` is the local run folder."""
    if run is None:
        return None
    offline = bool(getattr(run, "offline", False))
    return {
        "id": run.id,
        "path": "/".join(str(p) for p in (run.entity, run.project, run.id) if p),
        "url": None if offline else run.url,
        "mode": "offline" if offline else "online",
        "dir": os.path.abspath(os.path.dirname(run.dir)) if run.dir else None,
    }


def _text(v: Any) -> str | None:
    """A prompt or completion as one string: chat messages as `role: content` lines."""
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, list) and all(isinstance(m, dict) and "content" in m for m in v):
        return "\n".join(f"{m.get('role', '?')}: {m['content']}" for m in v)
    if isinstance(v, list) and len(v) == 1:  # one sample per prompt
        return _text(v[0])
    import json

    return json.dumps(v, ensure_ascii=False, default=str)


def _is_score(v: Any) -> bool:
    return v is None or isinstance(v, int | float)  # bool is an int: pass/fail columns count


def eval_table(
    result: Any, prompts: list | None = None, generations: list | None = None, max_rows: int = 1000
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the per-example evaluation table: id, prompt, completion, score (the
    example column behind the primary metric) and the other numeric columns (sub-scores).

    Prompts and completions come from the example rows, else from `prompts` / `generations`
    (the eval set's prompts and the generated samples, in example order; the first sample shown).
    """
    examples = list(result.examples)[:max_rows]
    pair = prompts is not None and len(prompts) == len(result.examples)
    gens = generations is not None and len(generations) == len(result.examples)
    score_col = result.columns.get(result.primary) if result.primary else None
    keys: list[str] = []
    for ex in examples:
        keys.extend(k for k in ex if k not in keys)
    text_keys = {"id", "prompt", "completion", "response"}
    subs = [
        k
        for k in keys
        if k not in text_keys and k != score_col and all(_is_score(e.get(k)) for e in examples)
    ]
    columns = ["id", "prompt", "completion", *(["score"] if score_col else []), *subs]
    rows = []
    for i, ex in enumerate(examples):
        prompt = ex.get("prompt", prompts[i] if pair else None)
        completion = ex.get("completion", ex.get("response", generations[i] if gens else None))
        score = [ex.get(score_col)] if score_col else []
        rows.append(
            [str(ex.get("id", i)), _text(prompt), _text(completion), *score, *(ex.get(k) for k in subs)]
        )
    return columns, rows


def log_eval_table(
    result: Any, prompts: list | None = None, generations: list | None = None, key: str = "eval/examples"
) -> bool:
    """Log the per-example evaluation table (see eval_table) to the active W&B run, if any."""
    import sys

    wandb = sys.modules.get("wandb")  # only a job that opened a run has imported it
    if wandb is None or wandb.run is None or not result.examples:
        return False
    columns, rows = eval_table(result, prompts, generations)
    wandb.run.log({key: wandb.Table(columns=columns, data=rows)})
    return True
