"""`custom`: your own data and reward functions, configured from YAML or the command line.

    rvpo-train task=custom task.train_source=prompts.jsonl \\
        'task.rewards=[my_rewards:mentions_number,my_rewards:only_letters]' experiment_name=my_task

Data (`data`): a hub id or a local JSON/JSONL/Parquet/CSV file or directory; the prompt column
holds text or chat messages; every other column reaches the rewards as a keyword, as in TRL. Without
`eval_source`, a seeded `eval_share` of the train rows is held out for evaluation.

Rewards (`user_code`): import paths of functions in TRL's signature
`(prompts, completions, **columns) -> list[float | None]`, each one channel with optional metadata
(name, binary, low/high range, weight), or of a `MultiChannelReward` (a subclass, an instance, or a
factory with `factory: true`) giving K channels. Evaluation scores the eval split with the same
rewards through the generic `rewards/` evaluation, plus optional functions of the same signature
whose per-example means are reported as `custom/<name>`.

Prompts longer than the model's context minus the completion budget (or `max_prompt_tokens`) are
dropped and counted in the record, or refused (`long_prompts`), when the task loads and before any
weights load (tasks.prompt_limit).

Before a run is hashed, `prepare_config` resolves every import path, checks every signature and
pins sha256 hashes of the code (`task.code_hashes`) and of local data (`task.data_hashes`) into the
config: the run id and config hash then change with the code or data, so an edited reward never
reuses an old record.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from rvpo_repro.evals.base import EvalResult, mean_metric
from rvpo_repro.evals.held_out_rewards import evaluate_channels
from rvpo_repro.rewards import MultiChannelReward, RewardChannel
from rvpo_repro.tasks import prompt_limit
from rvpo_repro.tasks.base import Task, TaskData, TaskInputError, register_task
from rvpo_repro.tasks.custom import data as custom_data
from rvpo_repro.tasks.custom.user_code import (
    CheckedMultiReward,
    CheckedReward,
    build_reward,
    missing_columns,
    resolve,
    source_hash,
)

EVAL_PREFIX = "custom"


@dataclass
class RewardSpec:
    """One entry of `task.rewards` (a bare string is `{path: <string>}`)."""

    path: str = MISSING  # package.module:function | package.module.function
    name: str | None = None  # channel name (default: the function's __name__)
    binary: bool | None = None  # a constraint: satisfied iff reward == high (default false)
    low: float | None = None  # declared range, for the bottleneck metric (default [0, 1])
    high: float | None = None
    weight: float | None = None  # channel weight (default 1); all channels of a multi-channel reward
    factory: bool = False  # call the object with `kwargs`; it returns the reward
    kwargs: dict[str, Any] = field(default_factory=dict)  # class/factory arguments, or bound to a function


@dataclass
class EvalFunctionSpec:
    """One entry of `task.eval_functions`: per-completion scores, averaged per example."""

    path: str = MISSING
    name: str | None = None  # metric `custom/<name>` (default: the function's __name__)


@dataclass
class CustomTaskConfig:
    name: str = "custom"
    train_source: str = ""  # required: hub id | .json/.jsonl/.parquet/.csv file | directory
    eval_source: str | None = None  # None: hold out eval_share of the train rows
    train_split: str = "train"  # split of a directory or hub source (a single file is read whole)
    eval_split: str = "test"
    subset: str | None = None  # hub configuration name
    prompt_column: str = "prompt"  # text or chat messages [{role, content}]
    id_column: str | None = None  # None: an `id` column if present, else <split>-<row>
    system_prompt: str | None = None  # prepended to text prompts as a system message
    eval_share: float = 0.2
    split_seed: int = 0  # fixed across runs, so eval examples pair up between runs
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    eval_samples: int = 4  # completions per eval prompt
    probe_rows: int = 2  # call each reward on this many train rows (empty completion) when loading
    # Prompts over max_prompt_tokens chat-templated tokens (None: the model's context minus
    # completion_tokens) are dropped and counted, or refused (long_prompts): tasks.prompt_limit.
    max_prompt_tokens: int | None = None
    long_prompts: str = "drop"  # drop | refuse
    completion_tokens: int = 0  # room kept for the completion; the config sets trainer.max_completion_length
    rewards: list[Any] = field(default_factory=list)  # RewardSpec entries or bare import paths
    eval_functions: list[Any] = field(default_factory=list)  # EvalFunctionSpec entries or paths
    code_hashes: dict[str, str] = field(default_factory=dict)  # filled by the run: import path -> sha256
    data_hashes: dict[str, str] = field(default_factory=dict)  # filled by the run: source key -> sha256


def _specs(items: Any, schema: type, key: str) -> list:
    """Config entries (bare strings or mappings) -> `schema` instances; a typo names the entry and key."""
    if isinstance(items, str) or items is None:
        items = [items] if items else []
    out = []
    for i, item in enumerate(items):
        if isinstance(item, DictConfig | ListConfig):
            item = OmegaConf.to_container(item, resolve=True)
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict):
            raise TaskInputError(
                f"{key}[{i}]: expected an import path or a mapping with `path`, got {item!r}"
            )
        try:
            out.append(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), item)))
        except Exception as exc:  # omegaconf: unknown key, wrong type, missing path
            msg = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
            raise TaskInputError(f"{key}[{i}]: {msg}") from exc
    return out


@dataclass
class LoadedReward:
    spec: RewardSpec
    reward: CheckedReward | CheckedMultiReward
    channels: list[RewardChannel]
    obj: Any  # what the import path resolved to (for hashing)


def load_rewards(specs: list[RewardSpec]) -> list[LoadedReward]:
    """Resolve, build and wrap each reward; one RewardChannel per channel; names unique."""
    out = []
    for spec in specs:
        label = f"reward {spec.path!r}"
        obj = resolve(spec.path)
        reward = build_reward(obj, spec.path, dict(spec.kwargs), spec.factory)
        if isinstance(reward, MultiChannelReward):
            if set_ := [k for k in ("name", "binary", "low", "high") if getattr(spec, k) is not None]:
                raise TaskInputError(
                    f"{label}: {set_} apply to a single-channel reward; a MultiChannelReward declares its channels"
                )
            checked = CheckedMultiReward(reward, label)
            channels = checked.channels
        else:
            target = getattr(reward, "func", reward)
            name = spec.name or getattr(target, "__name__", None) or type(target).__name__
            low = 0.0 if spec.low is None else spec.low
            high = 1.0 if spec.high is None else spec.high
            if not low < high:
                raise TaskInputError(f"{label}: low={low} must be below high={high}")
            checked = CheckedReward(reward, name, label)
            channels = [RewardChannel(name, binary=bool(spec.binary), low=low, high=high)]
        out.append(LoadedReward(spec, checked, channels, obj))
    names = [c.name for r in out for c in r.channels]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise TaskInputError(f"task.rewards: channel names {dup} repeat; give each entry its own `name`")
    return out


def channel_weights(rewards: list[LoadedReward]) -> list[float] | None:
    """(K,) weights from the entries' `weight`, or None when no entry sets one."""
    if all(r.spec.weight is None for r in rewards):
        return None
    return [1.0 if r.spec.weight is None else float(r.spec.weight) for r in rewards for _ in r.channels]


def _noop(*_: Any, **__: Any) -> None:
    return None


@register_task("custom")
class CustomTask(Task):
    schema = CustomTaskConfig

    @classmethod
    def prepare_config(cls, cfg: Any) -> None:
        t = cfg.task
        if not t.train_source:
            raise TaskInputError(
                "task.train_source: required (a hub id, or a local JSON/JSONL/Parquet/CSV file or directory)"
            )
        specs = _specs(t.rewards, RewardSpec, "task.rewards")
        if not specs:
            raise TaskInputError(
                "task.rewards: give at least one reward function by import path (module:function)"
            )
        rewards = load_rewards(specs)
        code = {r.spec.path: source_hash(r.spec.path, r.obj) for r in rewards}
        for spec in _specs(t.eval_functions, EvalFunctionSpec, "task.eval_functions"):
            obj = resolve(spec.path)
            CheckedReward(obj, spec.name or spec.path, f"eval function {spec.path!r}")  # signature check
            code[spec.path] = source_hash(spec.path, obj)
        data = {}
        for key in ("train_source", "eval_source"):
            if t[key] and (digest := custom_data.content_hash(t[key])):
                data[key] = digest
        weights = channel_weights(rewards)
        if weights is not None:
            if cfg.aggregator.weights is not None and list(cfg.aggregator.weights) != weights:
                raise TaskInputError(
                    f"channel weights come from task.rewards ({weights}) and aggregator.weights "
                    f"({list(cfg.aggregator.weights)}); set them in one place"
                )
            cfg.aggregator.weights = weights  # the one path to TRL's reward_weights and the aggregator
        t.code_hashes, t.data_hashes = code, data

    # ------------------------------------------------------------------------------------ loading
    @cached_property
    def rewards(self) -> list[LoadedReward]:
        return load_rewards(_specs(self.cfg.rewards, RewardSpec, "task.rewards"))

    @cached_property
    def eval_functions(self) -> list[CheckedReward]:
        specs = _specs(self.cfg.eval_functions, EvalFunctionSpec, "task.eval_functions")
        out = []
        for spec in specs:
            func = resolve(spec.path)
            name = spec.name or getattr(func, "__name__", None) or type(func).__name__
            out.append(CheckedReward(func, name, f"eval function {spec.path!r}"))
        names = [f.__name__ for f in out]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise TaskInputError(f"task.eval_functions: names {dup} repeat; give each entry its own `name`")
        return out

    def _read(self, source: str, split: str, key: str) -> list[dict]:
        c = self.cfg
        ds = custom_data.load(source, split, c.subset, None, key)
        return custom_data.rows(ds, c.prompt_column, c.id_column, c.system_prompt, split, f"{key}={source!r}")

    def load_rows(self) -> tuple[list[dict], list[dict]]:
        c = self.cfg
        train = self._read(c.train_source, c.train_split, "task.train_source")
        if c.eval_source:
            eval_ = self._read(c.eval_source, c.eval_split, "task.eval_source")
        else:
            if len(train) < 2:
                raise TaskInputError(
                    f"task.train_source={c.train_source!r}: {len(train)} row, too few to hold out an eval split"
                )
            order = list(range(len(train)))
            random.Random(c.split_seed).shuffle(order)
            n_eval = min(len(train) - 1, max(1, round(len(train) * c.eval_share)))
            eval_ = [train[i] for i in sorted(order[:n_eval])]
            train = [train[i] for i in sorted(order[n_eval:])]
        return train[: c.max_train_examples], eval_[: c.max_eval_examples]

    def _check_columns(self, rows: list[dict], key: str) -> None:
        columns = sorted(k for k in rows[0] if k != "prompt")
        funcs = [*(r.reward for r in self.rewards), *self.eval_functions]
        for f in funcs:
            if missing := missing_columns(f.signature, columns):
                raise TaskInputError(
                    f"{f.label}: needs column(s) {missing}, which {key} lacks; its columns: {columns}"
                )

    def _probe(self, rows: list[dict]) -> None:
        """Call each reward once on a few train rows (empty completions): a wrong return fails here,
        before the model loads, instead of at the first training step."""
        rows = rows[: self.cfg.probe_rows]
        if not rows:
            return
        prompts = [r["prompt"] for r in rows]
        completions = [[{"role": "assistant", "content": ""}] for _ in rows]
        columns = {k: [r.get(k) for r in rows] for k in rows[0] if k != "prompt"}
        extra = {
            "completion_ids": [[] for _ in rows],
            "trainer_state": None,
            "log_extra": _noop,
            "log_metric": _noop,
        }
        for r in self.rewards:
            try:
                r.reward(prompts, completions, **columns, **extra)
            except TaskInputError:
                raise
            except Exception as exc:
                text = str(exc).strip().splitlines()
                raise TaskInputError(
                    f"{r.reward.label}: raised {type(exc).__name__}: {text[0] if text else ''} on train rows "
                    f"0-{len(rows) - 1} with an empty completion (task.probe_rows=0 skips this check)"
                ) from exc

    def fit_prompts(self, train: list[dict], eval_: list[dict], tokenizer: Any) -> tuple[list, list, dict]:
        """Both splits under the prompt limit (tasks.prompt_limit), and the facts for the record."""
        c = self.cfg
        limit = prompt_limit.prompt_limit(tokenizer, c.max_prompt_tokens, int(c.completion_tokens))
        train, train_facts = prompt_limit.fit_prompts(
            train, tokenizer, limit, c.long_prompts, "task.train_source"
        )
        eval_, eval_facts = prompt_limit.fit_prompts(eval_, tokenizer, limit, c.long_prompts, "the eval data")
        return train, eval_, {**limit, "rule": c.long_prompts, "train": train_facts, "eval": eval_facts}

    def build(self, tokenizer: Any, seed: int) -> TaskData:
        train, eval_ = self.load_rows()
        train, eval_, facts = self.fit_prompts(train, eval_, tokenizer)  # before any weights load
        self._check_columns(train, "task.train_source")
        self._check_columns(eval_, "the eval data")
        self._probe(train)
        return TaskData(
            train_dataset=custom_data.to_dataset(train, "task.train_source"),
            eval_dataset=custom_data.to_dataset(eval_, "the eval data"),
            reward_funcs=[r.reward for r in self.rewards],
            channels=[c for r in self.rewards for c in r.channels],
            extra={"prompt_limit": facts},
        )

    # --------------------------------------------------------------------------------- evaluation
    def evaluate(self, eval_dataset: Any, generations: list[list[str]], tokenizer: Any) -> EvalResult:
        rows = eval_dataset.to_list()
        prompts, completions, columns = [], [], {k: [] for k in rows[0] if k != "prompt"}
        offsets = []
        for row, samples in zip(rows, generations, strict=True):
            offsets.append(len(completions))
            prompts += [row["prompt"]] * len(samples)
            completions += [[{"role": "assistant", "content": s}] for s in samples]
            for k in columns:
                columns[k] += [row[k]] * len(samples)
        texts = [c[0]["content"] for c in completions]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if tokenizer is not None else None
        kwargs = {
            **columns,
            "completion_ids": ids,
            "trainer_state": None,
            "log_extra": _noop,
            "log_metric": _noop,
        }

        per_reward = []
        for r in self.rewards:
            out = r.reward(prompts, completions, **kwargs)
            per_reward.append(out if isinstance(r.reward, MultiChannelReward) else [[v] for v in out])
        matrix = [sum((vals[j] for vals in per_reward), []) for j in range(len(completions))]
        channels = [c for r in self.rewards for c in r.channels]
        score: Callable = lambda i, samples: matrix[offsets[i] : offsets[i] + len(samples)]  # noqa: E731
        result = evaluate_channels(list(eval_dataset["id"]), generations, channels, score)

        for f in self.eval_functions:
            values = f(prompts, completions, **kwargs)
            key = f"{EVAL_PREFIX}/{f.__name__}"
            for i, example in enumerate(result.examples):
                present = [v for v in values[offsets[i] : offsets[i] + len(generations[i])] if v is not None]
                example[key] = sum(present) / len(present) if present else None
            present = [e[key] for e in result.examples if e[key] is not None]
            if present:
                result.metrics[key] = mean_metric(present)
                result.columns[key] = key
        return result
