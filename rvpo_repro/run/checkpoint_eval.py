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
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from rvpo_repro.generation import GenerationSettings, generate
from rvpo_repro.rewards import expand_reward_funcs, item_weight_sources
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


def validation_metrics(cfg: Any, data: TaskData, rows: Any, model: Any, tokenizer: Any) -> dict[str, float]:
    """`validation/reward` (see the module docstring), `validation/<channel>` means, `validation/n`."""
    texts = [
        s[0] for s in generate(cfg.eval.backend, model, "", tokenizer, list(rows["prompt"]), _settings(cfg))
    ]
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


def checkpoint_eval_callback(
    cfg: Any, task: Any, data: TaskData, tokenizer: Any, path: Path, validation: Any = None, evaluate=None
):
    """A TrainerCallback evaluating the policy at every checkpoint save: the task's test set
    (`evaluate(cfg, task, data, model, "", tokenizer)`, the job's evaluate_policy) and, when given,
    the validation rows. Rows are appended to `path` (JSONL, one per step) so they survive a
    resume, and logged to W&B as `checkpoint_eval/<metric>`; the record keeps them."""
    from transformers import TrainerCallback

    class CheckpointEval(TrainerCallback):
        def on_save(self, args, state, control, model=None, **kwargs):
            if not state.is_world_process_zero or model is None:
                return
            was_training = model.training
            row: dict[str, Any] = {"step": state.global_step}
            if evaluate is not None:
                result = evaluate(cfg, task, data, model, "", tokenizer)
                row["metrics"] = {k: v["value"] for k, v in result.metrics.items()}
            if validation is not None:
                row["validation"] = validation_metrics(cfg, data, validation, model, tokenizer)
            model.train(was_training)
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            try:
                import wandb

                if wandb.run is not None:
                    flat = {**row.get("metrics", {}), **row.get("validation", {})}
                    wandb.log({f"checkpoint_eval/{k}": v for k, v in flat.items()}, step=state.global_step)
            except ImportError:
                pass

    return CheckpointEval()


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
    scored = [(r["step"], r["validation"][SELECTION_METRIC]) for r in rows if "validation" in r]
    scored = [(s, v) for s, v in scored if not math.isnan(v)]
    if scored:
        step = max(scored, key=lambda sv: (sv[1], -sv[0]))[0]
        value = dict(tested).get(step, final[1] if step == final[0] else math.nan)
        if not math.isnan(value):
            return step, value, VALIDATION
    step, value = max([*tested, final], key=lambda sv: sv[1])
    return step, value, OPTIMISTIC
