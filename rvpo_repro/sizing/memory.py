"""Each rank's peak GPU memory of one run, by component, from its composed config alone.

`plan_memory(cfg)` reads the model's shape (rvpo_repro.sizing.shapes: a local config.json, the tiny
model's settings, or the facts shipped for the paper's hub models), the
strategy and ZeRO stage (conf/accelerate/<model.accelerate>.yaml), the GPUs, the precision, the
batch and sequence lengths, the reference model (trainer.beta > 0) and the colocated vLLM engine
(share, tensor parallel size, sleep mode), and prices two phases that never overlap in time:

    training    policy states + reference model + activations + LM head (+ vLLM's share, unless asleep)
    generation  policy states + reference model + vLLM's share (weights / TP, runtime, KV cache)

The policy states use DeepSpeed's own model-state estimators (estimate_zero2_model_states_mem_needs,
estimate_zero3_model_states_mem_needs in deepspeed/runtime/zero/, reproduced here since DeepSpeed is
not a dependency of the suite; tests/engines/test_memory_parity.py holds them equal to the
installed DeepSpeed), the KV cache vLLM's arithmetic (2 x layers x KV heads x head size x bytes per
token, KV heads split over tensor parallel ranks). The rest is the suite's own arithmetic from
TRL 1.16's code (what its GRPOTrainer keeps alive), with the assumptions in ASSUMED; a GPU run
measures the plan's error (docs/guides/memory.md). GB here is 10^9 bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rvpo_repro.sizing.shapes import SHAPES_FILE, ModelShape, model_shape

GB = 1e9
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}

# Figures the plan assumes rather than derives, each with its reason.
ASSUMED: dict[str, float] = {
    # Prompt tokens of a micro-batch when the task sets no cap (task.max_prompt_tokens): RaR prompts
    # average ~150 tokens (cost.TASKS); TRL pads each micro-batch to its longest prompt.
    "prompt_tokens": 1024,
    # vLLM's memory beside weights and KV cache: the activation peak of its start-up profile (TRL caps
    # max_num_batched_tokens at 4096), the sampler's logits and CUDA graphs. vLLM measures it at start.
    "vllm_runtime_gb": 2.0,
    # What a sleeping engine keeps (sleep level 2 frees weights and KV cache; graphs and buffers stay).
    "vllm_asleep_gb": 0.5,
    # CUDA context, NCCL communicators and allocator fragmentation, outside torch's own accounting.
    "context_gb": 1.5,
}
# TRL 1.16's fused LM head (trl/kernels/chunked_logprob.py): TOKEN_CHUNK_SIZE x _CHUNKED_LOGPROB_CHUNK_SIZE tiles
LM_HEAD_TILE = (4096, 32768)


# ------------------------------------------------------------------------------------------ strategy
@dataclass(frozen=True)
class Strategy:
    name: str  # ddp | zero2 | zero3 ...
    zero_stage: int  # 0: DDP
    offload_optimizer: bool = False
    offload_params: bool = False

    @property
    def label(self) -> str:
        if not self.zero_stage:
            return "DDP"
        off = [w for w, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on]
        return f"ZeRO-{self.zero_stage}" + (f" (offload: {', '.join(off)})" if off else "")


def strategy_of(model: Any) -> Strategy:
    """conf/accelerate/<model.accelerate>.yaml: DeepSpeed's ZeRO stage and offload, or DDP."""
    from omegaconf import OmegaConf

    from rvpo_repro.config import conf_dir

    name = model.accelerate
    if name is None:
        return Strategy("ddp", 0)
    path = conf_dir() / "accelerate" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"model.accelerate={name!r}: no accelerate config {path}")
    acc = OmegaConf.to_container(OmegaConf.load(path))
    if acc.get("distributed_type") != "DEEPSPEED":
        return Strategy(name, 0)
    ds = acc.get("deepspeed_config") or {}
    return Strategy(
        name,
        int(ds.get("zero_stage", 0)),
        offload_optimizer=str(ds.get("offload_optimizer_device", "none")) != "none",
        offload_params=str(ds.get("offload_param_device", "none")) != "none",
    )


# DeepSpeed's model-state estimators (deepspeed/runtime/zero/stage_1_and_2.py, stage3.py; bytes per GPU).
def estimate_zero2_gpu_bytes(total_params: int, total_gpus: int, cpu_offload: bool) -> int:
    if cpu_offload:
        return int(2 * total_params)
    return int(2 * total_params + int(18 * total_params / total_gpus))


def estimate_zero3_gpu_bytes(
    total_params: int, largest_layer_params: int, total_gpus: int, cpu_offload: bool, cpu_offload_params: bool
) -> int:
    largest_layer_memory = 4 * largest_layer_params
    if cpu_offload and cpu_offload_params:
        return int(largest_layer_memory)
    if cpu_offload:
        return int(largest_layer_memory + int(2 * total_params / total_gpus))
    return int(largest_layer_memory + int(18 * total_params / total_gpus))


def policy_states(shape: ModelShape, strategy: Strategy, gpus: int) -> tuple[float, str]:
    """(bytes, label) of the policy's weights, gradients and AdamW state on one rank."""
    p = shape.params
    if strategy.zero_stage == 0:
        # fp32 weights (the master copy: rvpo_repro.models.load_model) + fp32 gradients + AdamW's two
        # moments, plus DDP's bucket copy of the gradients (gradient_as_bucket_view is off by default)
        return 20 * p, "policy: fp32 weights, grads, AdamW, DDP buckets (20 B/param)"
    if strategy.zero_stage in (1, 2):
        return estimate_zero2_gpu_bytes(
            p, gpus, strategy.offload_optimizer
        ), "policy states (DeepSpeed ZeRO-2 est.)"
    if strategy.zero_stage == 3:
        est = estimate_zero3_gpu_bytes(
            p, shape.largest_layer_params, gpus, strategy.offload_optimizer, strategy.offload_params
        )
        return est, "policy states (DeepSpeed ZeRO-3 est.)"
    raise ValueError(f"model.accelerate={strategy.name!r}: ZeRO stage {strategy.zero_stage} has no estimator")


def reference_bytes(shape: ModelShape, strategy: Strategy, gpus: int, dtype_bytes: int) -> tuple[float, str]:
    """TRL builds the reference model in the policy's dtype: fp32 under DDP (a full copy per rank);
    under DeepSpeed, prepare_deepspeed runs it in bf16, whole on every rank below ZeRO-3, sharded at 3."""
    if strategy.zero_stage == 0:
        return 4 * shape.params, "reference model (fp32, each rank)"
    if strategy.zero_stage == 3:
        return dtype_bytes * shape.params / gpus, "reference model (sharded)"
    return dtype_bytes * shape.params, "reference model (each rank)"


# ------------------------------------------------------------------------------------------ activations
def layer_activation_bytes(shape: ModelShape, tokens: int, act: int) -> float:
    """Bytes one decoder layer keeps for backward over `tokens` (micro-batch x sequence) tokens,
    with SDPA (no attention matrix) and `act`-byte activations: each RMSNorm its fp32 input and its
    cast output, the attention's q, k, v, output and fp32 log-sum-exp, the MLP's gate, SiLU, up and
    product (intermediate width)."""
    h, kv, heads = shape.hidden_size, shape.num_key_value_heads * shape.head_dim, shape.num_attention_heads
    norms = 2 * (4 + act) * h
    attention = act * (2 * h + 2 * kv) + 4 * heads
    mlp = 4 * act * shape.intermediate_size
    return tokens * (norms + attention + mlp)


def activation_bytes(shape: ModelShape, tokens: int, act: int, residual: int, checkpointing: bool) -> float:
    """Checkpointed: every layer's input (the residual stream's dtype) plus one layer recomputed in
    backward; else every layer's activations."""
    layer = layer_activation_bytes(shape, tokens, act)
    if checkpointing:
        return shape.num_hidden_layers * tokens * shape.hidden_size * residual + layer
    return shape.num_hidden_layers * layer


def lm_head_bytes(shape: ModelShape, completion_tokens: int, act: int) -> float:
    """TRL 1.16 scores completions through a tiled LM head that never holds the logits; its backward
    keeps an fp32 weight gradient, an fp32 hidden-state gradient and one logits tile."""
    h = shape.hidden_size
    tile = min(completion_tokens, LM_HEAD_TILE[0]) * LM_HEAD_TILE[1] * act
    return 4 * shape.vocab_size * h + 4 * completion_tokens * h + act * completion_tokens * h + tile


# ------------------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Part:
    key: str  # what to change when it does not fit: SETTINGS[key]
    label: str
    training: float  # bytes in each phase (0: absent)
    generation: float


# The setting to change, per component that can overflow.
SETTINGS: dict[str, str] = {
    "policy": "model.num_gpus or model.accelerate (a higher ZeRO stage)",
    "reference": "trainer.beta=0 (no reference model) or model.accelerate=zero3 (sharded)",
    "activations": "model.gradient_checkpointing=true or a smaller model.per_device_train_batch_size",
    "lm_head": "a smaller model.per_device_train_batch_size",
    "vllm": "model.vllm_gpu_memory_utilization, or model.vllm_enable_sleep_mode=true",
    "hf_generation": "a smaller model.per_device_train_batch_size or trainer.use_vllm=true",
    "context": "model.gpu_memory_gb",
}


@dataclass(frozen=True)
class VllmShare:
    share_bytes: float
    weights: float  # per rank: weights / tensor parallel size
    runtime: float
    tensor_parallel: int
    sleep: bool
    kv_per_token: int
    max_model_len: int

    @property
    def kv_cache(self) -> float:
        return self.share_bytes - self.weights - self.runtime

    @property
    def kv_tokens(self) -> int:
        return max(0, int(self.kv_cache // self.kv_per_token))

    def problem(self, share: float) -> str | None:
        """What vLLM itself refuses at start: weights that leave no KV cache, or a cache shorter than
        one sequence of max_model_len tokens."""
        if self.kv_cache <= 0:
            return (
                f"vLLM's share {share:g} ({self.share_bytes / GB:.1f} GB) cannot hold the weights "
                f"({self.weights / GB:.1f} GB per rank at tensor parallel {self.tensor_parallel}) and its "
                f"runtime ({self.runtime / GB:.1f} GB); raise model.vllm_gpu_memory_utilization or "
                "model.vllm_tensor_parallel_size"
            )
        if self.kv_tokens < self.max_model_len:
            return (
                f"vLLM's KV cache ({self.kv_cache / GB:.1f} GB = {self.kv_tokens} tokens) is shorter than one "
                f"sequence of max_model_len {self.max_model_len}; raise model.vllm_gpu_memory_utilization or "
                "set trainer.vllm_max_model_length"
            )
        return None


@dataclass
class MemoryPlan:
    """One rank's planned memory; `unknown` says why there is none (the model's size is not known)."""

    model: str
    gpu_memory_gb: float
    gpus: int = 0
    strategy: str = ""
    dtype: str = ""
    micro_batch: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    parts: list[Part] = field(default_factory=list)
    vllm: VllmShare | None = None
    vllm_problem: str | None = None
    unknown: str | None = None

    def total(self, phase: str) -> float:
        return sum(getattr(p, phase) for p in self.parts)

    @property
    def phase(self) -> str:
        return max(("training", "generation"), key=self.total)

    @property
    def peak_gb(self) -> float:
        return self.total(self.phase) / GB

    @property
    def problem(self) -> str | None:
        """One line when the plan does not fit its GPU: the component and the setting to change."""
        if self.unknown or not self.gpus:
            return None
        where = f"model {self.model} ({self.strategy} on {self.gpus} GPU(s))"
        if self.vllm_problem:
            return f"{where}: {self.vllm_problem}"
        if self.peak_gb <= self.gpu_memory_gb:
            return None
        phase = self.phase
        worst = max(self.parts, key=lambda p: getattr(p, phase))
        return (
            f"{where}: planned peak {self.peak_gb:.1f} GB per GPU ({phase}) exceeds model.gpu_memory_gb="
            f"{self.gpu_memory_gb:g}; its largest part is {worst.label} ({getattr(worst, phase) / GB:.1f} GB): "
            f"change {SETTINGS[worst.key]}"
        )

    def summary(self) -> str:
        if self.unknown:
            return f"memory plan: {self.unknown}"
        return (
            f"memory / GPU: peak {self.peak_gb:.1f} of {self.gpu_memory_gb:g} GB ({self.phase}); {self.strategy} on "
            f"{self.gpus} GPU(s), {self.dtype}, micro-batch {self.micro_batch} x ({self.prompt_tokens} prompt + "
            f"{self.completion_tokens} completion tokens)"
        )

    def lines(self) -> list[str]:
        """The summary, then a table of the parts by phase (GB)."""
        if self.unknown:
            return [self.summary()]
        rows = [("  part", "training", "generation")]
        for p in self.parts:
            rows.append((f"  {p.label}", _gb(p.training), _gb(p.generation)))
        rows.append(("  total", _gb(self.total("training")), _gb(self.total("generation"))))
        width = max(len(r[0]) for r in rows)
        out = [self.summary()] + [f"{a.ljust(width)}  {b:>8}  {c:>10}" for a, b, c in rows]
        if self.vllm is not None:
            v = self.vllm
            out.append(
                f"  vLLM: {v.weights / GB:.1f} GB weights (TP {v.tensor_parallel}) + {v.runtime / GB:.1f} GB runtime + "
                f"{v.kv_cache / GB:.1f} GB KV cache = {v.kv_tokens} tokens (max_model_len {v.max_model_len})"
                + ("; asleep while training" if v.sleep else "")
            )
        if self.problem:
            out.append(f"  does not fit: {self.problem}")
        return out


def _gb(b: float) -> str:
    return f"{b / GB:.1f}" if b else "-"


def prompt_tokens_of(cfg: Any) -> int:
    """The task's prompt cap (task.max_prompt_tokens) when it sets one, else ASSUMED['prompt_tokens']."""
    cap = cfg.task.get("max_prompt_tokens") if hasattr(cfg.task, "get") else None
    return int(cap) if cap else int(ASSUMED["prompt_tokens"])


def plan_memory(cfg: Any) -> MemoryPlan:
    """Each rank's planned memory by component for the composed config `cfg` (see the module doc)."""
    model, trainer = cfg.model, cfg.trainer
    plan = MemoryPlan(model=str(model.name), gpu_memory_gb=float(model.get("gpu_memory_gb", 80.0)))
    shape = model_shape(model)
    if shape is None:
        plan.unknown = (
            f"model {model.name}: size unknown (no config.json at model.path={model.path!r} and no shipped "
            f"facts for it in {SHAPES_FILE.name}); no plan"
        )
        return plan
    strategy = strategy_of(model)
    gpus = max(int(model.num_gpus), 1)
    dtype_bytes = DTYPE_BYTES[str(model.dtype)]
    # DDP trains the fp32 master weights under bf16 autocast: matmul outputs in model.dtype, the
    # residual stream in fp32. DeepSpeed's bf16 mode runs the whole module in model.dtype.
    residual = 4 if strategy.zero_stage == 0 else dtype_bytes
    b = int(model.per_device_train_batch_size)
    prompt, completion = prompt_tokens_of(cfg), int(trainer.max_completion_length)
    plan.gpus, plan.strategy, plan.dtype = int(model.num_gpus), strategy.label, str(model.dtype)
    plan.micro_batch, plan.prompt_tokens, plan.completion_tokens = b, prompt, completion

    states, label = policy_states(shape, strategy, gpus)
    parts = [Part("policy", label, states, states)]
    if float(trainer.get("beta", 0.0)) > 0:
        ref, label = reference_bytes(shape, strategy, gpus, dtype_bytes)
        parts.append(Part("reference", label, ref, ref))
    checkpointing = bool(model.gradient_checkpointing)
    acts = activation_bytes(shape, b * (prompt + completion), dtype_bytes, residual, checkpointing)
    parts.append(
        Part("activations", f"activations ({'checkpointed' if checkpointing else 'all layers'})", acts, 0)
    )
    parts.append(
        Part(
            "lm_head",
            "LM head backward (TRL tiled log-probs)",
            lm_head_bytes(shape, b * completion, dtype_bytes),
            0,
        )
    )
    parts += _generation_parts(cfg, shape, plan, dtype_bytes, strategy, prompt + completion)
    parts.append(
        Part(
            "context",
            "CUDA context, NCCL, fragmentation",
            ASSUMED["context_gb"] * GB,
            ASSUMED["context_gb"] * GB,
        )
    )
    plan.parts = parts
    return plan


def _generation_parts(
    cfg: Any, shape: ModelShape, plan: MemoryPlan, dtype_bytes: int, strategy: Strategy, seq: int
) -> list[Part]:
    model, trainer = cfg.model, cfg.trainer
    if not trainer.get("use_vllm"):
        return [_hf_generation(cfg, shape, dtype_bytes, strategy, seq)]
    if trainer.get("vllm_mode", "colocate") != "colocate":
        return []  # server mode: vLLM runs on GPUs of its own
    tp = int(model.get("vllm_tensor_parallel_size", 1))
    share = float(model.vllm_gpu_memory_utilization)
    sleep = bool(model.get("vllm_enable_sleep_mode", False))
    v = VllmShare(
        share_bytes=share * plan.gpu_memory_gb * GB,
        weights=shape.params * dtype_bytes / tp,
        runtime=ASSUMED["vllm_runtime_gb"] * GB,
        tensor_parallel=tp,
        sleep=sleep,
        kv_per_token=shape.kv_bytes_per_token(dtype_bytes, tp),
        max_model_len=int(trainer.get("vllm_max_model_length") or shape.max_position_embeddings),
    )
    plan.vllm, plan.vllm_problem = v, v.problem(share)
    asleep = ASSUMED["vllm_asleep_gb"] * GB
    label = f"vLLM colocated (share {share:g}{', sleeps' if sleep else ''})"
    return [Part("vllm", label, asleep if sleep else v.share_bytes, v.share_bytes)]


def _hf_generation(cfg: Any, shape: ModelShape, dtype_bytes: int, strategy: Strategy, seq: int) -> Part:
    """transformers' generate on the policy: under ZeRO-3 TRL gathers the whole model (bf16) first;
    the KV cache and one step's fp32 logits cover every prompt of the rank's generation batch."""
    model, trainer = cfg.model, cfg.trainer
    batch = int(model.per_device_train_batch_size) * int(
        trainer.get("steps_per_generation") or model.gradient_accumulation_steps
    )
    gen_batch = trainer.get("generation_batch_size")
    if gen_batch:
        batch = math.ceil(int(gen_batch) / max(int(model.num_gpus), 1))
    gathered = dtype_bytes * shape.params if strategy.zero_stage == 3 else 0
    kv = batch * seq * shape.kv_bytes_per_token(dtype_bytes)
    logits = batch * shape.vocab_size * 4
    return Part("hf_generation", "HF generation (KV cache, logits)", 0, gathered + kv + logits)


def gpu_shortfall(name: str, total_bytes: int, gpu_memory_gb: float) -> str | None:
    """One line when the device has less memory than the plan is held against."""
    if total_bytes >= gpu_memory_gb * GB:
        return None
    return (
        f"GPU {name} has {total_bytes / GB:.1f} GB, less than model.gpu_memory_gb={gpu_memory_gb:g} that this "
        "run's memory plan assumes (rvpo-sweep --dry-run prints the plan); set model.gpu_memory_gb to check it"
    )


def check_memory(cfg: Any) -> None:
    """Refuse a training run whose plan exceeds model.gpu_memory_gb on its planned GPUs (ConfigError:
    one line naming the component and the setting to change); a model of unknown size gets one line
    saying so and runs unplanned."""
    import logging

    from rvpo_repro.config import ConfigError

    try:
        plan = plan_memory(cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    if plan.problem:
        raise ConfigError(plan.problem)
    if plan.unknown and int(cfg.model.num_gpus):
        logging.getLogger(__name__).warning(plan.summary())
