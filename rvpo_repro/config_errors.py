"""Config mistakes on the command line as one line, exit status 2, closest valid names first.

Hydra reports a misspelt group option, an unknown key or a value of the wrong type in several
lines of its own (exit 1). `one_line_compose_errors` turns each into the suite's line:

    rvpo-train: aggregator=rvpp: no option 'rvpp' in config group 'aggregator'; did you mean rvpo, rvpo_k5, ...?
    rvpo-train: trainer.max_step=5: no key 'max_step' in 'trainer'; did you mean max_steps?
    rvpo-train: aggregator.risk=high: expected a float, got 'high'
    rvpo-train: aggregator.risk=2: option(s) ['risk'] do not apply to aggregator 'grpo'; it accepts [...]

`--cfg job --resolve` resolves `${hydra:runtime.output_dir}` as the run would (`print_resolved`).

Secrets never pass through the command line (`refuse_secrets`): Hydra writes every override into
its output folder (`.hydra/overrides.yaml`, `config.yaml`, `hydra.yaml`) before the app runs, so an
override that sets a secret-named key (`+judge.api_key=...`), carries the value of a secret
environment variable, or puts something other than a variable NAME into a `*_env` key is refused
before Hydra starts, in one line that shows the key and never the value.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any

from rvpo_repro.config import ConfigError

EXIT_CONFIG = 2
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def closest(word: str, options: Sequence[str], n: int = 5) -> list[str]:
    """Up to `n` of `options` most like `word`, closest first (difflib's ratio; a shared prefix
    breaks ties, so `rvpp` puts `rvpo` before `grpo`)."""

    def score(opt: str) -> tuple[float, int]:
        prefix = len(next((p for p in (opt[:i] for i in range(len(opt), 0, -1)) if word.startswith(p)), ""))
        return difflib.SequenceMatcher(None, word, opt).ratio(), prefix

    ranked = sorted(dict.fromkeys(options), key=score, reverse=True)
    return [o for o in ranked if score(o)[0] >= 0.4][:n]


def overrides_in(args: Sequence[str]) -> list[str]:
    """The Hydra overrides among command-line words (`key=value`, `+key=value`, `~key`), not the
    flags nor their values (`--cfg job`)."""
    return [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]


def refuse_secrets(overrides: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """ConfigError for the first override that would write a secret to disk (module docstring).

    The line names the override's key only; the value is never echoed."""
    from rvpo_repro.run.provenance import is_secret_key

    env = os.environ if env is None else env
    secrets = [v for k, v in env.items() if is_secret_key(k) and len(v) >= 8]
    for o in overrides:
        typed, _, value = o.partition("=")
        key = re.sub(r"^[+~]+", "", typed)
        name = key.rpartition(".")[2]
        if is_secret_key(name):
            raise ConfigError(
                f"{typed}=<not shown>: secrets are not accepted in the config or on the command line "
                "(they would be written to disk); export it in the environment variable the config "
                "names instead (judge.api_key_env, default OPENAI_API_KEY)"
            )
        if any(s in value for s in secrets):
            raise ConfigError(
                f"{typed}=<not shown>: the value holds the value of a secret environment variable; "
                "secrets are read from the environment only, never from the config"
            )
        if name.endswith("_env") and value and value != "null" and not _ENV_NAME.fullmatch(value):
            raise ConfigError(
                f"{typed}=<not shown>: expected the NAME of an environment variable (letters, digits, "
                "underscores), not its value; export the key there"
            )


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    near = closest(word, options)
    return f"; did you mean {', '.join(near)}?" if near else ""


def _override_of(key: str, overrides: Sequence[str]) -> str:
    """The command-line override that set `key` (as typed), else `key`."""
    for o in overrides:
        if re.sub(r"^[+~]+", "", o.split("=", 1)[0]) == key:
            return o
    return key


def _node_at(config_name: str, parent: str, overrides: Sequence[str]) -> dict[str, Any]:
    """The node `parent` ("" for the root) of the config composed without the bad override,
    unresolved; {} when that does not compose either."""
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import DictConfig, OmegaConf

    from rvpo_repro.config import compose

    app = GlobalHydra.instance().hydra  # inside a Hydra app: set aside while composing
    GlobalHydra.instance().clear()
    try:
        cfg = compose(list(overrides), config_name=config_name)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        return OmegaConf.to_container(node, resolve=False) if isinstance(node, DictConfig) else {}
    except Exception:  # noqa: BLE001 (the candidates are a courtesy: never a second error)
        return {}
    finally:
        if app is not None:
            GlobalHydra.instance().initialize(app)


def _foreign_option(key: str, near: str, config_name: str, overrides: Sequence[str]) -> str | None:
    """For `aggregator.<key>`: the line refusing it for the method the config names, naming what
    that method accepts, when another method takes `key` or no option is `near` it (a typo close
    to one of the method's options gets "did you mean" instead)."""
    from rvpo_repro.aggregators import AGGREGATORS
    from rvpo_repro.aggregators.base import foreign_options

    elsewhere = any(key in (f.name for f in fields(cls.schema)) for cls in AGGREGATORS.values())
    if near and not elsewhere:
        return None
    # a multirun composes every job before the first starts: name the swept method that refuses it
    fixed, swept = _without_sweep(overrides, "aggregator")
    for choice in swept or [None]:
        job = fixed if choice is None else [*fixed, f"aggregator={choice}"]
        method = _node_at(config_name, "aggregator", job).get("name")
        line = foreign_options(method, [key]) if method in AGGREGATORS else None
        if line:
            return line if choice is None else f"{line} (the sweep's job aggregator={choice})"
    return None


def _without_sweep(overrides: Sequence[str], group: str) -> tuple[list[str], list[str]]:
    """`overrides` without a multirun sweep of `group` (aggregator=rvpo,grpo), and the swept
    options ([] when `group` is not swept, or the overrides do not parse)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 (a courtesy for the message: never a second error)
        return list(overrides), []
    for text, o in zip(overrides, parsed, strict=True):
        if o.key_or_group == group and o.is_sweep_override():
            return [x for x in overrides if x != text], [str(v) for v in o.sweep_string_iterator()]
    return list(overrides), []


def _keys_at(config_name: str, parent: str, overrides: Sequence[str]) -> list[str]:
    """Keys of the node `parent` ("" for the root) of the config composed without the bad override,
    plus, for the root, the config groups and, for `trainer`, TRL's GRPOConfig fields."""
    keys = [str(k) for k in _node_at(config_name, parent, overrides)]
    if not parent:
        from rvpo_repro.config import conf_dir, group_options

        keys += [*group_options(conf_dir())]
    if parent == "trainer":
        import dataclasses

        from trl import GRPOConfig

        keys += [f.name for f in dataclasses.fields(GRPOConfig) if f.init]
    return keys


def _config_error_within(exc: BaseException) -> ConfigError | None:
    """The ConfigError an OmegaConf resolution error wraps (its cause or context), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ConfigError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def describe(exc: BaseException, config_name: str, overrides: Sequence[str]) -> str | None:
    """The one line for a Hydra composition error, or None when it is not a config mistake."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    text = str(exc)
    if isinstance(exc, ConfigError):
        return text
    if (raised := _config_error_within(exc)) is not None:  # raised by one of the suite's resolvers
        return str(raised)
    if isinstance(exc, MissingConfigException):
        found = re.search(r"Could not (?:find|load) '([^']+)/([^'/]+)'", text)
        if found:
            group, option = found.groups()
            group = group.strip("/")
            options = list(exc.options or [])
            return (
                f"{_override_of(group, overrides)}: no option {option!r} in config group {group!r}"
                + _did_you_mean(option, options)
                + (f" (options: {', '.join(sorted(options))})" if options else "")
            )
        return text.splitlines()[0]
    if isinstance(exc, OverrideParseException):
        return f"cannot parse the override: {text.splitlines()[0]}"
    if not isinstance(exc, ConfigCompositionException):
        return None
    cause = exc.__cause__
    key = getattr(cause, "full_key", None) or ""
    if isinstance(cause, ConfigKeyError | ConfigAttributeError) or "Could not override" in text:
        key = (
            key
            or (
                re.search(r"Could not override '([^']+)'", text) or re.search(r"'(\S+)'", text) or [None, ""]
            )[1]
        )
        parent, _, name = key.rpartition(".")
        others = [o for o in overrides if o != _override_of(key, overrides)]
        hint = _did_you_mean(name, _keys_at(config_name, parent, others))
        if parent == "aggregator" and (foreign := _foreign_option(name, hint, config_name, others)):
            return f"{_override_of(key, overrides)}: {foreign}"
        where = f"in {parent!r}" if parent else "at the top level of the config"
        return f"{_override_of(key, overrides)}: no key {name!r} {where}" + (
            hint or f" (to add one: +{key}=...)"
        )
    if isinstance(cause, ValidationError):
        msg = (getattr(cause, "msg", None) or str(cause)).splitlines()[0]
        typed = re.search(r"Value '(.*)' of type '\w+' could not be converted to (\w+)", msg)
        if typed:
            msg = f"expected {'an' if typed[2][0] in 'AEIOU' else 'a'} {typed[2].lower()}, got {typed[1]!r}"
        enum = re.search(r"Invalid value '(.*)', expected one of \[(.*)\]", msg)
        if enum:
            choices = [c.strip() for c in enum[2].split(",")]
            msg = f"expected one of {', '.join(choices)}, got {enum[1]!r}" + _did_you_mean(enum[1], choices)
        return f"{_override_of(key, overrides) if key else 'config'}: {msg}"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{first} {str(cause).splitlines()[0] if cause else ''}".strip()


@contextlib.contextmanager
def one_line_compose_errors(
    prog: str,
    config_name: str,
    overrides: Sequence[str],
    job_errors: Callable[[], dict[type[BaseException], int]] | None = None,
) -> Iterator[None]:
    """Within: Hydra's report of a failed composition is replaced by one line and exit status 2.

    Hydra catches every exception of composing (and of the run) in `run_and_report` and prints its
    own text; this wraps that one function, so errors of the task itself keep their handling
    (rvpo_repro.cli.one_line_errors). A multirun hands a failed job's exception back to Hydra,
    which raises the first once every job has ended: one of `job_errors()` (error type: exit
    status) is shown as one line too, after Hydra's line naming the job's overrides."""
    from unittest import mock

    import hydra._internal.utils as hydra_utils

    original = hydra_utils.run_and_report

    def run_and_report(func: Any) -> Any:
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 (Hydra's own handler takes whatever is not ours)
            line, status = describe(exc, config_name, overrides), EXIT_CONFIG
            if line is None and job_errors is not None:
                codes = job_errors()
                status = next((c for t, c in codes.items() if isinstance(exc, t)), None)
                line = str(exc) if status is not None else None
            if line is None:  # not a config mistake: Hydra reports it as it always has
                error = exc

                def again() -> None:
                    raise error

                return original(again)
            print(f"{prog}: {line}", file=sys.stderr, flush=True)
            raise SystemExit(status) from None

    with mock.patch.object(hydra_utils, "run_and_report", run_and_report):
        yield


# ------------------------------------------------------------------------ --cfg ... --resolve
def wants_resolved(args: Sequence[str]) -> bool:
    """`--cfg job|hydra|all --resolve` (without --package, which Hydra's own printer handles)."""
    return "--resolve" in args and ("--cfg" in args or "-c" in args) and not {"--package", "-p"} & set(args)


def print_resolved(prog: str, config_name: str, args: Sequence[str]) -> None:
    """Print the config resolved as the run would see it: Hydra's `--cfg --resolve` fails on
    `${hydra:runtime.output_dir}`, which Hydra sets only when a job starts (to the absolute
    `hydra.run.dir`); here it is set the same way first. A config mistake: one line, exit 2."""
    try:
        text = _resolved_yaml(config_name, args)
    except ConfigError as exc:
        line = str(exc)
    except Exception as exc:  # noqa: BLE001 (composition errors of every kind Hydra raises)
        overrides = overrides_in(args)
        line = describe(exc, config_name, overrides) or f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    else:
        sys.stdout.write(text)
        return
    print(f"{prog}: {line}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIG)


def _resolved_yaml(config_name: str, args: Sequence[str]) -> str:
    import os

    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from rvpo_repro.config import compose

    flag = "--cfg" if "--cfg" in args else "-c"
    i = list(args).index(flag)
    kind = args[i + 1] if i + 1 < len(args) else "job"
    if kind not in ("job", "hydra", "all"):
        raise ConfigError(f"{flag} {kind}: expected job, hydra or all")
    overrides = overrides_in(args)
    cfg = compose(overrides, config_name=config_name, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = os.path.abspath(OmegaConf.select(cfg, "hydra.run.dir"))
    HydraConfig.instance().set_config(cfg)
    if kind == "job":
        with open_dict(cfg):
            del cfg["hydra"]
    elif kind == "hydra":
        cfg = OmegaConf.create({"hydra": cfg.hydra})
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)
