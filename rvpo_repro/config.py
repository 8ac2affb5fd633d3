"""Config composition and validation: schemas registered with Hydra, the config tree, and the
checks every entry point runs before any work (`validate`).

The schemas themselves live in rvpo_repro.schemas. `register_configs()` is called by every entry
point before composing. Paths are found when asked for (`conf_dir()`), never at import.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from rvpo_repro.ranges import Range, field_ranges, first_out_of_range
from rvpo_repro.schemas import GROUP_SCHEMAS, EvaluateConfig, TrainConfig, TrainerExtras


def register_configs() -> None:
    """Register the top-level schemas and one `<group>_schema` per group, `<task>_schema` per task
    and `<method>_schema` per registered aggregator method (its dataclass's options and `name`).

    They are stored at the root of the config store, not inside their groups, so that option
    lists (`--help`, tab completion) show only real choices; a group's YAML files pull theirs in
    with `- /<group>_schema@_here_` (`/<task>_schema`, `/<method>_schema`) in their defaults list.
    """
    from rvpo_repro.aggregators import AGGREGATORS  # each method brings its own schema
    from rvpo_repro.tasks import TASKS  # each task too

    schemas = {f"{group}_schema": schema for group, schema in GROUP_SCHEMAS.items()}
    for registry in (TASKS, AGGREGATORS):
        for name, item in registry.items():
            if schemas.setdefault(f"{name}_schema", item.schema) is not item.schema:
                raise ValueError(f"two config schemas named {name}_schema: name the task or method apart")
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    for name, schema in schemas.items():
        cs.store(name=name, node=schema)


def shipped_dir(name: str) -> Path:
    """`<name>/` at the top of the repository (conf, sweeps), where users look for it, which the
    wheel ships as package data under `rvpo_repro/<name>` (pyproject's package-dir mapping): the
    installed copy when there is one, else the source checkout's. So the console scripts find it
    from any directory, editable install or not."""
    package = Path(__file__).resolve().parent
    installed = package / name
    return installed if installed.is_dir() else package.parent / name


# The user-facing config groups (`--help`, close-match hints): these first, then every other folder
# of the config tree except hydra/ (Hydra's own settings) and accelerate/ (`accelerate launch` files).
FIRST_GROUPS = ("experiment", "model", "task", "aggregator")
NOT_GROUPS = ("hydra", "accelerate")


def group_options(conf: Path) -> dict[str, list[str]]:
    """{group: sorted option names} of the user-facing config groups under `conf`."""
    groups = sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name not in NOT_GROUPS)
    ordered = [g for g in FIRST_GROUPS if g in groups] + [g for g in groups if g not in FIRST_GROUPS]
    found = {g: sorted(p.stem for p in (conf / g).glob("*.yaml")) for g in ordered}
    return {g: options for g, options in found.items() if options}


def conf_dir() -> Path:
    """The config tree (shipped_dir("conf")), checked to hold train.yaml."""
    conf = shipped_dir("conf")
    if not (conf / "train.yaml").is_file():
        raise FileNotFoundError(f"no config tree at {conf}: train.yaml missing")
    return conf


# conf/train.yaml's search path names the folder holding the shipped sweeps/ as ${rvpo.shipped_root:}:
# after the project root, so a project's own sweeps/<name>.yaml comes first and the paper sweeps are
# found from any directory. Registered on import, so every process that composes or unpickles a config
# (launcher workers included) can resolve it.
# trainer.bf16 follows model.dtype (conf/trainer/default.yaml); validate() refuses a disagreement.
OmegaConf.register_new_resolver("rvpo.is_bf16", lambda dtype: dtype == "bfloat16", replace=True)
OmegaConf.register_new_resolver("rvpo.shipped_root", lambda: str(shipped_dir("sweeps").parent), replace=True)


def experiment_dirname(name: Any) -> str:
    """`name` as one folder name (of results/runs/ and outputs/); a path there is a ConfigError."""
    text = str(name)
    if text and text not in (".", "..") and "/" not in text and "\\" not in text:
        return text
    raise ConfigError(f"experiment_name={text!r}: expected one folder name, not a path (it names the folder "
                      "under results/runs/ and outputs/)")  # fmt: skip


# conf/hydra/default.yaml names Hydra's output folders with it: a path is refused before they are made
OmegaConf.register_new_resolver("rvpo.dirname", experiment_dirname, replace=True)


def recipe_option(option: str, *, _parent_: Any, _root_: Any) -> Any:
    """`${rvpo.recipe:<option>}`, an aggregator option a family may set: `recipe.<option>.<method>`
    of the experiment family (TrainConfig.recipe; null there: the method's default), or the
    method's own default when the family sets none. A family that sets the option but does not list
    the method is a ConfigError, so a method added later never takes a silent default there."""
    from rvpo_repro.aggregators import option_defaults

    name = _parent_.get("name")
    table = (_root_.get("recipe") or {}).get(option)
    if table is not None and name not in table:
        raise ConfigError(f"recipe.{option} lists no value for aggregator {name!r} (it lists {', '.join(table)}); "
                          f"add one to the experiment family's recipe")  # fmt: skip
    value = None if table is None else table[name]
    if value is None:
        value = option_defaults(name)[option]
    return value


# conf/aggregator/<method>.yaml: the options an experiment family gives each method (its `recipe`)
OmegaConf.register_new_resolver("rvpo.recipe", recipe_option, replace=True)


def compose(
    overrides: list[str] | None = None, config_name: str = "train", return_hydra_config: bool = False
):
    """Compose a config from `conf/` outside a Hydra app (tests, notebooks, scripts)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(
            config_name=config_name, overrides=list(overrides or []), return_hydra_config=return_hydra_config
        )


# ------------------------------------------------------------------------------------------ validation
class ConfigError(ValueError):
    """A config key or value the suite refuses; the message names the key and what is allowed."""


# GRPOConfig fields the job sets from other groups: a `trainer.<key>` would be silently overridden.
JOB_SET_TRAINER_KEYS: dict[str, str] = {
    "output_dir": "the run directory",
    "run_name": "the run id",
    "report_to": "logger.mode",
    "use_cpu": "the device found at run time",
    "seed": "seed",
    "data_seed": "seed",
    "reward_weights": "aggregator.weights",
    "per_device_train_batch_size": "model.per_device_train_batch_size",
    "gradient_accumulation_steps": "model.gradient_accumulation_steps",
    "gradient_checkpointing": "model.gradient_checkpointing",
    "vllm_gpu_memory_utilization": "model.vllm_gpu_memory_utilization",
    "vllm_tensor_parallel_size": "model.vllm_tensor_parallel_size",
    "vllm_enable_sleep_mode": "model.vllm_enable_sleep_mode",
    "fp16": "model.dtype",  # the one place precision is set (rvpo_repro.models.precision_args)
}
MODEL_TRAINER_KEYS = tuple(k for k, v in JOB_SET_TRAINER_KEYS.items() if v == f"model.{k}")


def schema_ranges(plain: dict) -> dict[str, Range]:
    """{dotted key: Range} declared on the schema fields of a config: the root schema's groups, and
    the schemas of the task and the aggregator method it names."""
    from rvpo_repro.aggregators import AGGREGATORS
    from rvpo_repro.tasks import TASKS

    root = EvaluateConfig if "checkpoint" in plain else TrainConfig
    found = dict(field_ranges(root))
    for group, registry in (("task", TASKS), ("aggregator", AGGREGATORS)):
        name = (plain.get(group) or {}).get("name")
        if name in registry:
            found |= field_ranges(registry[name].schema, f"{group}.")
    return found


def check_ranges(plain: dict) -> None:
    """Raise ConfigError for the first numeric setting outside its range (`rvpo_repro.ranges.range_of`)."""
    if problem := first_out_of_range(plain, schema_ranges(plain)):
        raise ConfigError(problem)


def _trl_field_types() -> dict[str, Any]:
    import dataclasses

    from trl import GRPOConfig

    return {f.name: f.type for f in dataclasses.fields(GRPOConfig) if f.init}


def _type_ok(value: Any, tp: Any) -> bool:
    import types
    import typing

    if value is None:
        return type(None) in typing.get_args(tp) or tp is Any
    options = (
        typing.get_args(tp)
        if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union
        else (tp,)
    )
    for opt in options:
        opt = typing.get_origin(opt) or opt
        if opt is Any or not isinstance(opt, type) or opt is typing.Literal:
            return True  # a type this check does not model: TRL's own check decides
        if opt is float and isinstance(value, int) and not isinstance(value, bool):
            return True
        if opt is int and isinstance(value, bool):
            continue
        if isinstance(value, opt) or (issubclass(opt, str) and isinstance(value, str)):
            return True
    return False


def check_trainer(trainer: dict) -> None:
    """Each `trainer` key is a TrainerExtras key or a GRPOConfig field of the right type."""
    import difflib

    extras = {f.name for f in fields(TrainerExtras)}
    grpo = _trl_field_types()
    for key, value in trainer.items():
        if key in extras:
            continue
        if key in JOB_SET_TRAINER_KEYS:
            raise ConfigError(
                f"trainer.{key}: set by the run from {JOB_SET_TRAINER_KEYS[key]}; set that instead"
            )
        if key not in grpo:
            near = difflib.get_close_matches(key, [*grpo, *extras], n=3)
            raise ConfigError(
                f"trainer.{key}: not a field of TRL's GRPOConfig nor a suite setting ({sorted(extras)})"
                + (f"; did you mean {', '.join(near)}?" if near else "")
            )
        if not _type_ok(value, grpo[key]):
            raise ConfigError(f"trainer.{key}={value!r}: expected {grpo[key]} (TRL GRPOConfig.{key})")


def check_judges(plain: dict) -> None:
    """`judge.backend` and `eval_judge.backend` name registered back ends (rvpo_repro.judges), so a
    typo stops the run before the model loads."""
    import difflib

    from rvpo_repro.judges import known_backends

    for group in ("judge", "eval_judge"):
        backend = (plain.get(group) or {}).get("backend")
        if backend is not None and backend not in known_backends():
            near = difflib.get_close_matches(str(backend), known_backends(), n=3, cutoff=0.5)
            raise ConfigError(
                f"{group}.backend={backend!r}: not a judge back end (expected one of {', '.join(known_backends())})"
                + (f"; did you mean {', '.join(near)}?" if near else "")
            )


def grpo_kwargs(cfg: Any) -> dict:
    """GRPOConfig keyword arguments of a composed config: the trainer group as it is (without the
    TrainerExtras keys), the model group's batch, memory and precision settings, the seed and the
    reward weights. The job adds output_dir, run_name, report_to and use_cpu."""
    from rvpo_repro.models import precision_args

    trainer = OmegaConf.to_container(cfg.trainer, resolve=True)
    for f in fields(TrainerExtras):
        trainer.pop(f.name, None)
    weights = cfg.aggregator.weights
    return {
        **trainer,
        **{k: cfg.model[k] for k in MODEL_TRAINER_KEYS},
        **precision_args(cfg.model),
        "reward_weights": list(weights) if weights else None,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
    }


def _schema_error(exc: Exception, where: str) -> ConfigError:
    key = getattr(exc, "full_key", None) or ""
    msg = (getattr(exc, "msg", None) or str(exc)).splitlines()[0]
    return ConfigError(f"config key `{where}{key}`: {msg}" if key else f"config {where or 'root'}: {msg}")


def validate(cfg: Any, construct_trl: bool = True) -> Any:
    """Refuse a composed config before any work starts, naming the key and what is allowed:
    unknown keys anywhere (Hydra lets `+key=value` add them, the root included), wrong types,
    values out of range (`check_ranges`), options of another aggregator method, and whatever TRL's
    GRPOConfig refuses (constructed here on CPU, which takes seconds; `construct_trl=False` skips it).

    Returns the aggregator built to check its options (rvpo_repro.aggregators): a run trains with
    this one object."""

    from rvpo_repro.aggregators import aggregator_from_config
    from rvpo_repro.tasks import TASKS

    register_configs()
    root_schema = OmegaConf.get_type(cfg)
    root_schema = root_schema if root_schema in (TrainConfig, EvaluateConfig) else TrainConfig
    raw = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
    raw.pop("hydra", None)
    loose = {k: v for k, v in raw.items() if k not in ("task", "trainer")}
    try:  # unknown or mistyped keys of the root and of every group with a dataclass schema
        OmegaConf.merge(OmegaConf.structured(root_schema), loose)
    except Exception as exc:  # omegaconf raises several types; all mean "does not fit"
        raise _schema_error(exc, "") from exc
    task_name = raw.get("task", {}).get("name")
    if task_name not in TASKS:
        raise ConfigError(f"task.name={task_name!r}: expected one of {sorted(TASKS)}")
    try:
        OmegaConf.merge(OmegaConf.structured(TASKS[task_name].schema), raw["task"])
    except Exception as exc:
        raise _schema_error(exc, "task.") from exc
    check_aggregator_options(raw.get("aggregator"))
    if not isinstance(raw.get("trainer"), dict):
        raise ConfigError(f"trainer: expected a mapping of GRPOConfig fields, got {raw.get('trainer')!r}")
    plain = {
        k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(raw[k], dict) else cfg[k]
        for k in raw
        if k not in ("paths", "logger")
    }  # paths may point at Hydra's runtime
    check_ranges(plain)
    check_judges(plain)
    check_trainer(plain["trainer"])
    check_precision(plain["model"], plain["trainer"])
    check_vllm_model(plain)
    try:
        aggregator = aggregator_from_config(cfg.aggregator)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"aggregator: {exc}") from exc
    if construct_trl:
        check_grpo_config(cfg)
    return aggregator


def check_aggregator_options(agg: Any) -> None:
    """The `aggregator` node names a registered method and holds its options only, of their types
    (an option of another method added with `+aggregator.<key>=`, or a `name` changed on the
    command line, is refused naming the method and what it accepts)."""
    from rvpo_repro.aggregators import AGGREGATORS
    from rvpo_repro.aggregators.base import foreign_options

    name = agg.get("name") if isinstance(agg, dict) else None
    if name not in AGGREGATORS:
        raise ConfigError(f"aggregator.name={name!r}: expected one of {sorted(AGGREGATORS)}")
    if problem := foreign_options(name, set(agg) - {"name"}):
        raise ConfigError(f"aggregator: {problem}")
    try:
        OmegaConf.merge(OmegaConf.structured(AGGREGATORS[name].schema), agg)
    except Exception as exc:
        raise _schema_error(exc, "aggregator.") from exc


def check_precision(model: dict, trainer: dict) -> None:
    """trainer.bf16 (GRPOConfig's autocast / DeepSpeed bf16 switch) must agree with model.dtype."""
    from rvpo_repro.models import precision_args

    try:
        want = precision_args(OmegaConf.create(model))["bf16"]
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if "bf16" in trainer and trainer["bf16"] != want:
        raise ConfigError(
            f"trainer.bf16={trainer['bf16']} disagrees with model.dtype={model['dtype']}: the precision is "
            "set by model.dtype alone (bfloat16: bf16 compute over fp32 master weights); set that instead"
        )


def check_vllm_model(plain: dict) -> None:
    """Refuse before anything starts what vLLM would refuse a minute into start-up, where its caller
    does not see it: a colocated layout TRL cannot build; on CPU, a head size its attention cannot
    run (32+; the default tiny model has 16) and a KV cache above the free memory."""
    from rvpo_repro.generation import vllm_layout_problem, vllm_memory_problem, vllm_shape_problem

    model, trainer = plain["model"], plain["trainer"]
    if problem := vllm_layout_problem(model, trainer):
        raise ConfigError(problem)
    colocated = trainer.get("use_vllm") and trainer.get("vllm_mode") == "colocate"
    users = [k for k, on in [("trainer.use_vllm=true", colocated),
                             ("eval.backend=vllm", plain.get("eval", {}).get("backend") == "vllm")] if on]  # fmt: skip
    if not users:
        return
    if problem := vllm_memory_problem():
        raise ConfigError(f"{users[0]}: {problem}")
    tiny = model["tiny"]
    if model.get("source") == "tiny" and (
        problem := vllm_shape_problem(tiny["hidden_size"] // tiny["num_attention_heads"])
    ):
        raise ConfigError(f"{users[0]} with model={model['name']}: {problem}")


def grpo_config(cfg: Any, output_dir: str, report_to: str = "none", run_name: str | None = None) -> Any:
    """The run's TRL GRPOConfig (`grpo_kwargs` plus where and how it writes), the one place it is
    built; what GRPOConfig refuses becomes a ConfigError naming TRL's reason."""
    import torch
    from trl import GRPOConfig

    try:
        return GRPOConfig(
            **grpo_kwargs(cfg),
            output_dir=output_dir,
            run_name=run_name,
            report_to=report_to,
            use_cpu=not torch.cuda.is_available(),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trainer: TRL's GRPOConfig refuses this config: {exc}") from exc


def check_grpo_config(cfg: Any) -> None:
    """Refuse what TRL's GRPOConfig itself refuses (TRL's import takes seconds, so a run builds
    its GRPOConfig, and so checks it, only once it knows the run is not already finished)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        grpo_config(cfg, tmp)
