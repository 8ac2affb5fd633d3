"""Method labels: the one place an aggregator config becomes the name a table or figure shows.

`method_label({"name": "rvpo", "risk": 1.0, "schedule": "constant"})` -> `rvpo (k=1)`;
`{"name": "rvpo", "risk_start": 0.5, "risk_end": 2.0, "schedule": "linear"}` -> `rvpo (k 0.5→2)`;
`{"name": "gdpo", "reduce": "mean"}` -> `gdpo (mean)`; `{"name": "gdpo"}` -> `gdpo`. Options left unset
(None) or at the method's own default (its class's field default: gdpo `reduce: sum`, grpo `scale:
group`, ...) are not shown; any other option is shown as `key=value`, so two configs that differ in an
aggregator option never share a label.
paper_reference.yaml names its variants by these labels.

`setting_label` names a setting of the risk ablation, where k is the x axis: the risk is always
shown (the caller fills in the aggregator's default), a schedule by its ends and shape, hard_min
as k = ∞: `rvpo (k=1)`, `rvpo (k 0.5→2, linear)`, `hard min (k=∞)`, `variance penalty (β=0.5)`.
"""

from __future__ import annotations

_RISK_KEYS = {"risk", "risk_start", "risk_end", "schedule"}


def risk_of(agg: dict) -> tuple[float | None, str | None]:
    """(risk coefficient k, schedule) of an aggregator config: k is `risk`, or `risk_end` under a
    schedule; (None, None) for aggregators without one (grpo, gdpo, hard_min, ...)."""
    risk = agg.get("risk_end") if agg.get("risk_end") is not None else agg.get("risk")
    return (None if risk is None else float(risk)), agg.get("schedule")


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "[" + ",".join(_value(x) for x in v) + "]"
    return str(v)


def method_label(agg_cfg: dict) -> str:
    """The label of one aggregator config (see the module docstring)."""
    if "name" not in agg_cfg:
        raise ValueError(f"aggregator config without `name`: {agg_cfg}")
    parts = []
    risk, schedule = risk_of(agg_cfg)
    if schedule not in (None, "constant") and agg_cfg.get("risk_start") is not None:
        shape = "" if schedule == "linear" else f", {schedule}"
        parts.append(f"k {agg_cfg['risk_start']:g}→{risk:g}{shape}")
    elif risk is not None:
        parts.append(f"k={risk:g}")
    if agg_cfg.get("reduce") not in (None, "sum"):
        parts.append(str(agg_cfg["reduce"]))
    if agg_cfg.get("use_item_weights"):
        parts.append("item weights")
    skip = {"name", "reduce", "use_item_weights", *_RISK_KEYS}
    from rvpo_repro.aggregators import option_defaults  # torch: only once a label is rendered

    defaults = option_defaults(agg_cfg["name"])
    for key in sorted(agg_cfg):
        v = agg_cfg[key]
        if key in skip or v is None or (key in defaults and v == defaults[key]):
            continue
        parts.append(f"{key}={_value(v)}")
    return f"{agg_cfg['name']} ({', '.join(parts)})" if parts else str(agg_cfg["name"])


def configured_methods(configs: list[str] | None = None) -> dict[str, tuple[str, dict]]:
    """{config name: (label, options)} of aggregator configs (conf/aggregator/<name>.yaml, default:
    every one) composed at their defaults; ConfigError naming an unknown config."""
    from omegaconf import OmegaConf

    from rvpo_repro.config import ConfigError, compose, conf_dir, group_options

    known = group_options(conf_dir())["aggregator"]
    unknown = [a for a in configs or [] if a not in known]
    if unknown:
        raise ConfigError(f"--aggregators: no aggregator config {unknown}; expected names from {known}")
    out = {}
    for name in configs or known:
        cfg = OmegaConf.to_container(compose([f"aggregator={name}"]).aggregator, resolve=True)
        out[name] = (method_label(cfg), cfg)
    return out


def setting_label(agg: dict) -> str:
    """The label of one risk-ablation setting (see the module docstring); `risk` (rvpo at a constant
    k) and `beta` (variance_penalty) must be set."""
    name = agg.get("name")
    risk, schedule = risk_of(agg)
    if name == "rvpo" and schedule not in (None, "constant") and agg.get("risk_start") is not None:
        return f"rvpo (k {agg['risk_start']:g}→{risk:g}, {schedule})"
    if name == "rvpo":
        return f"rvpo (k={risk:g})"
    if name == "hard_min":
        return "hard min (k=∞)"
    if name == "variance_penalty":
        return f"variance penalty (β={agg['beta']:g})"
    raise ValueError(
        f"aggregator {name!r} is not a setting of the risk ablation (rvpo, hard_min, variance_penalty)"
    )
