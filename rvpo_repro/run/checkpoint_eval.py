"""Evaluation at checkpoint saves (`trainer.eval_checkpoints`) and the held-out validation split
that selects the best checkpoint without looking at the test set.

`trainer.validation_prompts` > 0 carves that many prompts out of the task's training data with a
seeded draw (`trainer.validation_seed`, the same draw for every run seed and method, so runs
select on the same prompts); they are never trained on. At every save the policy answers them
(one sample each, the eval sampling settings) and the task's own reward functions score the
answers: `validation/reward` is the mean over prompts of the weighted mean of the present
channels, each mapped onto [0, 1] by its declared range, weighted by the aggregator's channel
weights times the rubric item weights where the reward has them. The test-set evaluation at each
save is kept as before; picking the best checkpoint on it is optimistic (the test set chooses its
own winner), which is why `best_checkpoint` prefers the validation score.

Checkpoints are evaluated after training, never inside the training process (see
`rvpo_repro.run.generation_process`): at each save rank 0 links the checkpoint's weights and
tokenizer into `<run>/checkpoint_evals/step-N/` (hard links: no copy, and they outlive the
rotation of `checkpoints/` by `save_total_limit`), sealed like a checkpoint. Once the final model
is published, `evaluate_saved_checkpoints` scores each export that has no row yet:

    with a validation split   the validation prompts at every save, scored by the training judge
                              (the task's reward functions); the test set (and its grader, e.g.
                              simple-evals' paid GPT-4.1) only at the best checkpoint and the
                              final model, the two the tables report
    without one               the test set at every save (the best is then picked on it, labelled
                              optimistic)

Rows are appended to `checkpoint_evals.jsonl` as each finishes, so a kill during evaluation
reruns only what is missing. After the record is sealed the exports are removed except that of
the best checkpoint by validation, when there is one (`prune_exports`).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rvpo_repro.generation import GenerationSettings
from rvpo_repro.rewards import expand_reward_funcs, item_weight_sources
from rvpo_repro.run.checkpoints import SEAL, read_seal, seal, set_aside, why_incomplete
from rvpo_repro.run.generation_process import SavedPolicy
from rvpo_repro.tasks.base import TaskData

SELECTION_METRIC = "validation/reward"
OPTIMISTIC = "test set (optimistic)"
VALIDATION = "validation split"


def carve_validation(cfg: Any, data: TaskData) -> tuple[TaskData, Any, dict | None]:
    """(data without the validation prompts, the validation rows or None, facts for the record)."""
    n = int(cfg.trainer.get("validation_prompts") or 0)
    if n <= 0:
        return data, None, None
    if not cfg.trainer.get("eval_checkpoints"):
        raise ValueError(
            f"trainer.validation_prompts={n}: needs trainer.eval_checkpoints=true (the split is scored at saves)"
        )
    train = data.train_dataset
    if n >= len(train):
        raise ValueError(
            f"trainer.validation_prompts={n}: the task has only {len(train)} training prompts; "
            "leave some to train on"
        )
    seed = int(cfg.trainer.get("validation_seed") or 0)
    held = sorted(random.Random(seed).sample(range(len(train)), n))
    keep = sorted(set(range(len(train))) - set(held))
    facts = {"prompts": n, "seed": seed, "of": len(train), "indices": held}
    return replace(data, train_dataset=train.select(keep)), train.select(held), facts


def _settings(cfg: Any, num_samples: int = 1) -> GenerationSettings:
    return replace(GenerationSettings.of_run(cfg), num_samples=num_samples)


# Generates completions: (prompts, settings) -> num_samples texts per prompt.
Generate = Callable[[list, GenerationSettings], list[list[str]]]


def channel_scores(data: TaskData, rows: Any, texts: list[str], tokenizer: Any) -> list[list[float]]:
    """(N, K) reward values of `texts` answering `rows` (a datasets.Dataset), NaN = absent, by the
    task's reward functions called as TRL calls them."""
    prompts = list(rows["prompt"])
    conversational = bool(prompts) and isinstance(prompts[0], list)
    completions = [[{"role": "assistant", "content": t}] if conversational else t for t in texts]
    columns = {c: list(rows[c]) for c in rows.column_names if c != "prompt"}
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    funcs, _ = expand_reward_funcs(data.reward_funcs, data.channels)
    out = [[math.nan] * len(funcs) for _ in texts]
    for k, func in enumerate(funcs):
        values = func(prompts=prompts, completions=completions, completion_ids=ids, **columns)
        for i, v in enumerate(values):
            out[i][k] = math.nan if v is None else float(v)
    return out


def channel_weights(cfg: Any, data: TaskData, rows: Any) -> list[list[float]]:
    """(N, K) weights: aggregator.weights (or 1) times each reward's own item weights, if any."""
    funcs, specs = expand_reward_funcs(data.reward_funcs, data.channels)
    base = list(cfg.aggregator.weights) if cfg.aggregator.get("weights") else [1.0] * len(specs)
    w = [list(map(float, base)) for _ in range(len(rows))]
    inputs = [rows[i] for i in range(len(rows))]
    for offset, reward in item_weight_sources(data.reward_funcs):
        items = reward.item_weights(inputs)
        for i, row in enumerate(items or []):
            for j, x in enumerate(row):
                w[i][offset + j] *= float(x)
    return w


def validation_metrics(
    cfg: Any, data: TaskData, rows: Any, generate: Generate, tokenizer: Any
) -> dict[str, float]:
    """`validation/reward` (see the module docstring), `validation/<channel>` means, `validation/n`."""
    texts = [s[0] for s in generate(list(rows["prompt"]), _settings(cfg))]
    values = channel_scores(data, rows, texts, tokenizer)
    weights = channel_weights(cfg, data, rows)
    _, specs = expand_reward_funcs(data.reward_funcs, data.channels)
    per_prompt = []
    for v, w in zip(values, weights, strict=True):
        present = [
            (s.normalise(x), wk) for x, wk, s in zip(v, w, specs, strict=True) if not math.isnan(x) and wk > 0
        ]
        if present:
            per_prompt.append(sum(x * wk for x, wk in present) / sum(wk for _, wk in present))
    metrics = {SELECTION_METRIC: sum(per_prompt) / len(per_prompt) if per_prompt else math.nan}
    for k, spec in enumerate(specs):
        col = [v[k] for v in values if not math.isnan(v[k])]
        metrics[f"validation/{spec.name}"] = sum(col) / len(col) if col else math.nan
    metrics["validation/n"] = float(len(per_prompt))
    return metrics


# ---- exports: the policy of each checkpoint, kept for evaluation after training

EXPORTS = "checkpoint_evals"  # <run>/checkpoint_evals/step-N/
EVALS_FILE = "checkpoint_evals.jsonl"
_EXPORT = re.compile(r"^step-(\d+)$")
# What a checkpoint holds beside the policy: optimizer, scheduler, RNG and trainer state, DeepSpeed's
# shards and scripts. Everything else (weights, configs, tokenizer, chat template) is the policy.
_NOT_POLICY = re.compile(r"^(optimizer|scheduler|rng_state|trainer_state|training_args|zero_to_fp32|latest)")
_WEIGHTS = re.compile(r"\.(safetensors|bin)$")


def export_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / EXPORTS / f"step-{step}"


def export_checkpoint(checkpoint: Path, dest: Path) -> Path:
    """Link the policy's files of `checkpoint` into `dest` (a copy where links cannot be made),
    sealed; a half-made export from an interrupted save is replaced."""
    names = [
        p.name
        for p in sorted(checkpoint.iterdir())
        if p.is_file() and p.name != SEAL and not _NOT_POLICY.match(p.name)
    ]
    if not any(_WEIGHTS.search(n) for n in names):
        raise FileNotFoundError(
            f"{checkpoint}: no consolidated weights to evaluate (under ZeRO-3 the accelerate config "
            "needs zero3_save_16bit_model: true)"
        )
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in names:
        try:
            os.link(checkpoint / name, partial / name)
        except OSError:  # another file system, or one without hard links
            shutil.copy2(checkpoint / name, partial / name)
    # the same bytes as the checkpoint's, whose seal was written moments ago: its digests, not a rehash
    sealed = (read_seal(checkpoint) or {}).get("files", {})
    seal(partial, files={n: sealed[n] for n in names} if all(n in sealed for n in names) else None)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(partial, dest)
    return dest


def export_callback(run_dir: Path):
    """A TrainerCallback: at every save, rank 0 exports the checkpoint's policy (export_checkpoint).
    transformers calls it after the checkpoint is written and sealed on every rank."""
    from transformers import TrainerCallback

    class ExportCheckpoint(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                step = state.global_step
                export_checkpoint(Path(args.output_dir) / f"checkpoint-{step}", export_path(run_dir, step))

    return ExportCheckpoint()


def exports(run_dir: Path) -> dict[int, Path]:
    """The sealed exports of `run_dir` by step; one without a seal (an interrupted export) is set
    aside, never deleted. Their contents are checked against the seal where they are evaluated."""
    root = Path(run_dir) / EXPORTS
    found = {}
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not (m := _EXPORT.match(path.name)):
            continue
        if read_seal(path) is None:
            set_aside(path, Path(run_dir), "no completion seal (the export was interrupted)")
            continue
        found[int(m.group(1))] = path
    return found


def _verified(run_dir: Path, folder: Path) -> Path | None:
    """`folder` when every file of the export still has its sealed size and sha256; else it is set
    aside (one line) and None."""
    if (reason := why_incomplete(folder)) is not None:
        set_aside(folder, Path(run_dir), reason)
        return None
    return folder


# ---- evaluation after training


def _append(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def best_validated_step(rows: list[dict]) -> int | None:
    """The step with the highest `validation/reward` (earliest on ties), or None without one."""
    scored = [(r["step"], r["validation"][SELECTION_METRIC]) for r in rows if "validation" in r]
    scored = [(s, v) for s, v in scored if not math.isnan(v)]
    return max(scored, key=lambda sv: (sv[1], -sv[0]))[0] if scored else None


def evaluate_saved_checkpoints(
    cfg: Any,
    data: TaskData,
    validation: Any,
    run_dir: Path,
    tokenizer: Any,
    generate: Callable[[SavedPolicy], Generate],
    test: Callable[[SavedPolicy], dict[str, float]],
) -> list[dict]:
    """Score every export without a row (module docstring): the validation split when there is
    one (`generate(policy)` answers it), else the test set (`test(policy)`: metric -> value).
    Returns every row, one per step."""
    path = Path(run_dir) / EVALS_FILE
    done = {r["step"] for r in read_checkpoint_evals(path)}
    for step, folder in sorted(exports(run_dir).items()):
        if step in done:
            continue
        if _verified(run_dir, folder) is None:
            continue
        policy = SavedPolicy.of_run(cfg, folder)
        row: dict[str, Any] = {"step": step}
        if validation is not None:
            row["validation"] = validation_metrics(cfg, data, validation, generate(policy), tokenizer)
        else:
            row["metrics"] = test(policy)
        _append(path, row)
    return read_checkpoint_evals(path)


def grade_best(
    run_dir: Path, cfg: Any, final_step: int, test: Callable[[SavedPolicy], dict[str, float]]
) -> None:
    """Test the best checkpoint by validation (when it is not the final model and has no test row
    yet): with a validation split, the only checkpoint besides the final one the grader sees."""
    path = Path(run_dir) / EVALS_FILE
    rows = {r["step"]: r for r in read_checkpoint_evals(path)}
    step = best_validated_step(list(rows.values()))
    if step is None or step == final_step or "metrics" in rows[step]:
        return
    folder = exports(run_dir).get(step)
    if folder is None or _verified(run_dir, folder) is None:
        raise FileNotFoundError(f"{export_path(run_dir, step)}: the best checkpoint's weights are gone")
    _append(path, {**rows[step], "metrics": test(SavedPolicy.of_run(cfg, folder))})


def prune_exports(run_dir: Path, keep: int | None) -> None:
    """Remove the exports once the record is sealed, but the best checkpoint's (`keep`)."""
    for step, folder in exports(run_dir).items():
        if step != keep:
            shutil.rmtree(folder, ignore_errors=True)


def log_checkpoint_evals(rows: list[dict]) -> None:
    """Rows to the active W&B run as `checkpoint_eval/<metric>` over `checkpoint_eval/step`
    (they are logged after training, so W&B's own step has moved past them)."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    wandb.define_metric("checkpoint_eval/step")
    wandb.define_metric("checkpoint_eval/*", step_metric="checkpoint_eval/step")
    for row in rows:
        flat = {**row.get("metrics", {}), **row.get("validation", {})}
        wandb.log(
            {"checkpoint_eval/step": row["step"], **{f"checkpoint_eval/{k}": v for k, v in flat.items()}}
        )


def read_checkpoint_evals(path: Path) -> list[dict]:
    """Checkpoint evaluations written so far, one per step (the last line wins on a repeated step)."""
    if not path.exists():
        return []
    by_step = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[row["step"]] = row
    return [by_step[s] for s in sorted(by_step)]


def best_checkpoint(rows: list[dict], metric: str, final: tuple[int, float]) -> tuple[int, float, str]:
    """(step, test value of `metric` there, how it was chosen) of the best checkpoint: the highest
    `validation/reward` (earliest step on ties) when the rows have it, else the highest test value
    among the checkpoints and the final model (`final`: (step, value); the first on ties), which is
    labelled optimistic: the test set picks its own winner."""
    tested = [(r["step"], r["metrics"][metric]) for r in rows if metric in r.get("metrics", {})]
    step = best_validated_step(rows)
    if step is not None:
        value = dict(tested).get(step, final[1] if step == final[0] else math.nan)
        if not math.isnan(value):
            return step, value, VALIDATION
    step, value = max([*tested, final], key=lambda sv: sv[1])
    return step, value, OPTIMISTIC
