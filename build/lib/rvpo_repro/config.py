"""Structured-config schemas for every Hydra config group.

Each group's YAML files merge into the dataclass registered for that group, so an unknown key or
a value of the wrong type fails when Hydra composes the config, naming the key, instead of being
silently ignored later. `register_configs()` is called by every entry point before composing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


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
    num_gpus: int = 0  # GPUs a run of this size is planned for (0 = CPU)
    vllm_gpu_memory_utilization: float = 0.3  # share of each GPU that colocated vLLM may take
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)


@dataclass
class AggregatorConfig:
    """Options of one registered aggregator; None means "the aggregator's default".

    Options that do not apply to `name` are rejected by `rvpo_repro.aggregators.get_aggregator`.
    """

    name: str = MISSING
    scale: str | None = None  # grpo: group | batch | none
    risk: float | None = None  # rvpo: constant k
    risk_start: float | None = None  # rvpo: schedule start
    risk_end: float | None = None  # rvpo: schedule end
    schedule: str | None = None  # rvpo: constant | linear | cosine
    beta: float | None = None  # variance_penalty coefficient
    eps: float | None = None  # std floor (default 1e-4, as TRL)
    weights: list[float] | None = None  # per-channel weights (K,)


@dataclass
class TrainerConfig:
    """GRPO settings passed to TRL's GRPOConfig (names follow TRL where they exist)."""

    max_steps: int = 100
    learning_rate: float = 1e-6
    lr_scheduler_type: str = "constant"
    warmup_steps: float = 0.0  # int: steps; float in (0, 1): share of max_steps (transformers 5)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    num_generations: int = 8  # G, the group size
    generation_batch_size: int | None = None
    max_completion_length: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0  # KL coefficient
    epsilon: float = 0.2  # clip range
    loss_type: str = "dapo"
    num_iterations: int = 1
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int = 2
    use_vllm: bool = False
    vllm_mode: str = "colocate"  # colocate | server
    bf16: bool = False
    eval_checkpoints: bool = False  # also evaluate the policy at every checkpoint save (best vs final)


@dataclass
class EvalConfig:
    """Evaluation of the trained policy on the task's eval set."""

    backend: str = "auto"  # hf | vllm | auto (vllm when installed and a GPU is present)
    max_new_tokens: int | None = None  # None: trainer.max_completion_length
    temperature: float = 1.0
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
    temperature: float = 0.0
    max_tokens: int | None = None  # None: the back end's default (hf: 256)
    max_concurrency: int = 16
    max_retries: int = 4  # transport retries (timeouts, 429, 5xx), with exponential backoff
    reask_limit: int = 3  # re-asks of a malformed verdict before it is recorded as missing
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 60.0
    seed: int = 0  # backoff jitter; hf sampling
    cache_path: str | None = None  # SQLite verdict cache shared across runs (None = off)
    transport: str = "auto"  # openai back end: auto | aiohttp | httpx
    batch_size: int = 16  # hf back end
    device: str | None = None  # hf back end
    dtype: str = "float32"  # hf back end


class WandbMode(StrEnum):
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    mode: WandbMode = WandbMode.offline
    project: str = "rvpo-repro"
    entity: str | None = None
    dir: str = "${paths.output_dir}"
    tags: list[str] = field(default_factory=list)


@dataclass
class PathsConfig:
    root_dir: str = "${oc.env:RVPO_ROOT,.}"
    data_dir: str = "${paths.root_dir}/data"
    results_dir: str = "${paths.root_dir}/results"
    cache_dir: str = "${oc.env:RVPO_CACHE,${paths.root_dir}/.cache}"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class TrainConfig:
    model: ModelConfig = MISSING
    task: Any = MISSING
    aggregator: AggregatorConfig = MISSING
    trainer: TrainerConfig = MISSING
    judge: JudgeConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = MISSING
    paths: PathsConfig = MISSING
    experiment_name: str = "default"
    seed: int = 0


@dataclass
class EvaluateConfig(TrainConfig):
    """`rvpo-eval`: the train config of a run plus the checkpoint to evaluate."""

    checkpoint: str = MISSING  # a saved model directory (a run's model/ or checkpoints/checkpoint-N)


GROUP_SCHEMAS: dict[str, type] = {
    "model": ModelConfig,
    "aggregator": AggregatorConfig,
    "trainer": TrainerConfig,
    "judge": JudgeConfig,
    "logger": LoggerConfig,
    "paths": PathsConfig,
}


def register_configs() -> None:
    """Register the top-level schemas and one `<group>_schema` per group, `<task>_schema` per task.

    They are stored at the root of the config store, not inside their groups, so that option
    lists (`--help`, tab completion) show only real choices; a group's YAML files pull theirs in
    with `- /<group>_schema@_here_` in their defaults list.
    """
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(name=f"{group}_schema", node=schema)
    from rvpo_repro.tasks import TASKS  # each task brings its own schema

    for name, task in TASKS.items():
        cs.store(name=f"{name}_schema", node=task.schema)


def conf_dir() -> Path:
    """The config tree: `rvpo_repro/conf` inside an installed wheel, else the repository's `conf/`.

    The repository keeps `conf/` at its top, where users look for it; the wheel ships the same
    files as package data under `rvpo_repro/conf` (pyproject's package-dir mapping), so the
    console scripts find their configs from any directory, editable install or not.
    """
    packaged = Path(__file__).resolve().parent / "conf"
    if (packaged / "train.yaml").is_file():
        return packaged
    source = Path(__file__).resolve().parent.parent / "conf"
    if (source / "train.yaml").is_file():
        return source
    raise FileNotFoundError(f"no config tree at {packaged} (installed) or {source} (source checkout)")


CONF_DIR = conf_dir()


def compose(
    overrides: list[str] | None = None, config_name: str = "train", return_hydra_config: bool = False
):
    """Compose a config from `conf/` outside a Hydra app (tests, notebooks, scripts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=return_hydra_config
        )


def validate(cfg: Any) -> None:
    """Re-check a composed config against the schemas.

    Hydra lets `+group.key=value` add keys even to structured nodes; entry points call this so
    such a typo still fails, naming the key, before any work starts.
    """
    from omegaconf import OmegaConf

    register_configs()
    from rvpo_repro.tasks import TASKS

    for group, schema in {**GROUP_SCHEMAS, "task": TASKS[cfg.task.name].schema}.items():
        plain = OmegaConf.to_container(cfg[group], resolve=False, enum_to_str=True)
        try:
            OmegaConf.merge(OmegaConf.structured(schema), plain)
        except Exception as exc:  # omegaconf raises several types; all mean "does not fit"
            raise ValueError(
                f"config group '{group}' does not fit its schema {schema.__name__}: {exc}"
            ) from exc
