"""Dataclass schemas of the config groups (Hydra structured configs).

Each group's YAML files merge into the dataclass registered for that group (rvpo_repro.config),
so an unknown key or a value of the wrong type fails at compose time, naming the key. A field made
`within` a Range is range-checked by `rvpo_repro.config.validate`. Tasks and aggregators bring
their own schemas (each task's `schema`; each aggregator method's dataclass, `schema` once
registered), which the files of those groups pull in by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from omegaconf import MISSING

from rvpo_repro.ranges import AT_LEAST_1, NON_NEGATIVE, POSITIVE, PROBABILITY, Range, within


class ModelSource(StrEnum):
    tiny = "tiny"  # built offline from a seed (rvpo_repro.models)
    pretrained = "pretrained"  # hub id or local directory


@dataclass
class TinyModelConfig:
    """Shape of the offline random-weight Qwen2 model; the seed fixes weights and bytes."""

    seed: int = 0
    vocab_size: int = 512
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024


@dataclass
class ModelConfig:
    name: str = MISSING  # short name used in run ids and W&B tags
    source: ModelSource = ModelSource.pretrained
    path: str = ""  # hub id (Qwen/Qwen2.5-7B-Instruct) or local directory; unused for tiny
    revision: str | None = None
    dtype: str = "float32"  # float32 | bfloat16 | float16
    attn_implementation: str | None = None  # e.g. flash_attention_2 on GPU
    gradient_checkpointing: bool = False
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    num_gpus: int = within(NON_NEGATIVE, 0)  # GPUs a run of this size is planned for (0 = CPU)
    # share of each GPU that colocated vLLM may take
    vllm_gpu_memory_utilization: float = within(Range(0, 1, low_open=True), 0.3)
    # colocated vLLM: ranks sharing one engine (divides num_gpus)
    vllm_tensor_parallel_size: int = within(AT_LEAST_1, 1)
    vllm_enable_sleep_mode: bool = (
        False  # colocated vLLM frees its weights and KV cache while the policy trains
    )
    # each GPU's memory the run's memory plan is held against (rvpo_repro.sizing.memory)
    gpu_memory_gb: float = within(POSITIVE, 80.0)
    accelerate: str | None = None  # conf/accelerate/<name>.yaml for a run on several GPUs (rvpo-sweep)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class TrainerExtras:
    """The suite's own keys of the `trainer` group; every other key of that group is a TRL
    `GRPOConfig` field, passed to GRPOConfig as it is (see `grpo_kwargs`)."""

    eval_checkpoints: bool = False  # also evaluate the policy at every checkpoint save (best vs final)
    validation_prompts: int = 0  # prompts held out of training to select the best checkpoint (0: none)
    validation_seed: int = 0  # the draw of those prompts (fixed across run seeds and methods)


@dataclass
class EvalConfig:
    """Evaluation of the trained policy on the task's eval set."""

    backend: str = "auto"  # hf | vllm | auto (vllm when installed and a GPU is present)
    max_new_tokens: int | None = None  # None: trainer.max_completion_length
    temperature: float = within(NON_NEGATIVE, 1.0)  # 0: greedy
    top_p: float = 1.0
    batch_size: int = 64
    seed: int = 0


@dataclass
class JudgeConfig:
    """An LLM judge (rvpo_repro.judges). The API key is read from the environment variable named
    by `api_key_env`; the key itself never enters the config, the logs or the records."""

    backend: str = "none"  # none | openai | hf | scripted
    model: str = ""
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"  # name of the environment variable, never the key
    temperature: float = within(Range(0, 2), 0.0)
    max_tokens: int | None = None  # None: the back end's default (hf: 256)
    max_concurrency: int = 16
    max_retries: int = within(
        NON_NEGATIVE, 4
    )  # transport retries (timeouts, 429, 5xx), with exponential backoff
    reask_limit: int = within(
        NON_NEGATIVE, 3
    )  # re-asks of a malformed verdict before it is recorded as missing
    backoff_base_s: float = within(NON_NEGATIVE, 0.5)
    backoff_max_s: float = within(NON_NEGATIVE, 30.0)
    timeout_s: float = within(POSITIVE, 60.0)
    seed: int = 0  # backoff jitter; hf sampling
    cache_path: str | None = None  # SQLite verdict cache shared across runs (None = off)
    transport: str = "auto"  # openai back end: auto | aiohttp | httpx
    batch_size: int = 16  # hf back end
    device: str | None = None  # hf back end
    dtype: str = "float32"  # hf back end
    system_message: str | None = None  # grader system turn (simple-evals: "You are a helpful assistant.")
    failure_rate: float = 0.0  # rules back end: share of asks answered malformed (seeded)


class WandbMode(StrEnum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    """Weights & Biases (rvpo_repro.tracking). Runs are written under `<dir>/wandb/`, one folder
    for every job of every experiment, which `make wandb-sync` uploads."""

    mode: WandbMode = WandbMode.offline
    project: str = "rvpo-repro"
    entity: str | None = None
    dir: str = "${paths.root_dir}"  # W&B writes <dir>/wandb/{offline-run,run}-<time>-<id>/
    tags: list[str] = field(default_factory=list)
    run_id: str | None = None  # W&B run id; None: derived from the run id, so a resume continues it
    profiling: bool = False  # keep TRL's per-call `profiling/...` timings in the run summary


@dataclass
class PathsConfig:
    root_dir: str = "${oc.env:RVPO_ROOT,.}"
    data_dir: str = "${paths.root_dir}/data"
    results_dir: str = "${paths.root_dir}/results"
    cache_dir: str = "${oc.env:RVPO_CACHE,${paths.root_dir}/.cache}"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class RunConfig:
    """How a job runs, not what it computes (left out of the config hash)."""

    # A run whose training judge missed a larger share of its verdicts is not sealed, and a step with
    # no usable reward stops it; 1.0 accepts anything (plumbing smoke runs with a random judge).
    max_missing_share: float = within(PROBABILITY, 0.1)
    # how long ranks 1..N-1 wait for rank 0 (e.g. while it evaluates)
    rank_wait_hours: float = within(POSITIVE, 24.0)


@dataclass
class TrainConfig:
    model: ModelConfig = MISSING
    task: Any = MISSING
    aggregator: Any = MISSING  # the chosen method's own schema (rvpo_repro.aggregators.base.options_schema)
    trainer: dict[str, Any] = MISSING  # TRL GRPOConfig fields + TrainerExtras (checked by `validate`)
    judge: JudgeConfig = MISSING
    eval_judge: JudgeConfig = MISSING  # HealthBench grader (conf/eval_judge; default simple_evals)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    logger: LoggerConfig = MISSING
    paths: PathsConfig = MISSING
    experiment_name: str = "default"
    seed: int = 0
    # Options an experiment family gives each aggregator, keyed by option then by registered
    # aggregator name (conf/experiment/tool_calling.yaml: recipe.whiten.gdpo = token). The aggregator
    # files of the methods that have the option read it as `whiten: ${rvpo.recipe:whiten}`
    # (rvpo_repro.config.recipe_option): the family's value, else the method's own default; a name
    # the family does not list fails to resolve instead of getting a silent default.
    recipe: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluateConfig(TrainConfig):
    """`rvpo-eval`: the train config of a run plus the checkpoint to evaluate."""

    checkpoint: str = MISSING  # a saved model directory (a run's model/ or checkpoints/checkpoint-N)
    # Set by rvpo-eval, not by hand: the content digest of `checkpoint` (run.checkpoints.checkpoint_digest).
    # It identifies the evaluation in the config hash, in place of the checkpoint's path.
    checkpoint_sha256: str | None = None


GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "judge": JudgeConfig,
    "eval_judge": JudgeConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
}
