"""What one paper run costs: wall-clock hours and GPU-hours on H100-80GB, and dollars of paid grading.

Three parts, each from the composed config (docs/guides/costs.md has the reasoning):
  - training and generation: labelled assumptions (`HARDWARE`, `TASKS`); calibrate with `make gpu-check`;
  - the rubric judge's calls per second per GPU: a roofline bound from the judge model's shape, the
    tokens the rubric reward sends per item, the measured prefix-cache hit rate and the GPU's bf16
    throughput and memory bandwidth, times the fraction of it vLLM is assumed to reach (`judge_roofline`);
  - the paid HealthBench grader (simple-evals' GPT-4.1): calls and dollars for the checkpoints it
    grades, the best and the final (`grader_cost`), at the list prices in `PRICES`.
`rvpo-sweep` (rvpo_repro.sweep.plan) prices every run of a sweep with `estimate`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from rvpo_repro.sizing.shapes import SHAPES_FILE, shipped_shape, shipped_shapes

# Throughput on one H100-80GB SXM in bf16.
HARDWARE: dict[str, Any] = {
    "peak_flops": 989e12,  # dense bf16 FLOP/s of an H100 SXM (NVIDIA datasheet); training MFU is against it
    "mfu": 0.25,  # model FLOPs utilisation of the training passes
    # decode tokens/s per GPU of colocated vLLM (TP 1, the model group's memory share, batch ~100s)
    "decode_tokens_per_s": {
        "qwen2.5-1.5b": 12000,
        "qwen2.5-3b": 8000,
        "qwen2.5-7b": 4000,
        "qwen2.5-14b": 2000,
    },
    "params": {"qwen2.5-1.5b": 1.54e9, "qwen2.5-3b": 3.09e9, "qwen2.5-7b": 7.62e9, "qwen2.5-14b": 14.77e9},
    "overhead": 1.25,  # weight sync to vLLM, logging, checkpoint saves
}

# What the judge's roofline is held against: an H100 80GB SXM as measured, not its datasheet
# (989 TFLOP/s dense bf16, 3.35 TB/s HBM3). `make gpu-check` measures both again (part "roofline").
GPU: dict[str, Any] = {
    "name": "H100-80GB SXM",
    "bf16_flops": 790e12,  # bf16 GEMM throughput attained (large square torch.matmul)
    "bytes_per_s": 3.0e12,  # device-to-device copy bandwidth attained
    "memory_bytes": 80e9,
    "source": "as measured on the H100 80GB SXM machines lent to the project (bf16 GEMM, device-to-device "
    "copy), reported 2026-12; make gpu-check's roofline part measures both again",
}

# The rubric judge as served (conf/judge/vllm_local.yaml, sweeps/README.md "The judge").
JUDGE: dict[str, Any] = {
    "prefix_cache_hit_rate": 0.68,  # vLLM's prefix_cache_hits / queries, results/tables/judge_prefix_cache.json
    "reply_tokens": 60,  # assumption: JUDGE_SYSTEM asks for one JSON object, a one-or-two-sentence explanation
    "max_num_seqs": 256,  # vLLM's default cap on sequences decoded together
    "gpu_memory_utilization": 0.9,  # `vllm serve ... --gpu-memory-utilization 0.9` (sweeps/README.md)
    "efficiency": 0.5,  # assumption: the fraction of the roofline bound vLLM reaches (scheduling, kernels)
}

# Token counting without the models' tokenizers (none can be had offline; the suite's own tiny
# tokenizer splits English 2-3x finer than Qwen's or OpenAI's): OpenAI's rule of thumb, "one token
# is about 4 characters of English text" (help.openai.com, "What are tokens and how to count
# them?"), plus the chat format's tokens around each message (<|im_start|>role\n ... <|im_end|>\n)
# and before the reply (<|im_start|>assistant\n).
CHARS_PER_TOKEN = 4.0
TOKENS_PER_WORD = 4 / 3  # the same page: 100 tokens are about 75 words
MESSAGE_OVERHEAD_TOKENS = 5
REPLY_PRIMING_TOKENS = 3

# The paid HealthBench grader: list prices per 1M tokens (USD), standard tier, no Batch API (simple-evals
# calls the chat API one request at a time), no prompt-cache discount (best effort on OpenAI's side:
# the figures are an upper bound).
PRICES: dict[str, dict[str, Any]] = {
    "gpt-4.1-2025-04-14": {
        "input_per_m": 2.00,
        "output_per_m": 8.00,
        "date": "2026-04-02",
        "source": "OpenAI API pricing (platform.openai.com/docs/pricing), as tabulated at "
        "https://losclouds.com/ai-models/gpt-4-1 (verified 2026-04-02) and "
        "https://deploybase.ai/articles/gpt-4.1-pricing (March 2026)",
    },
}

# HealthBench's data, as published (the files cannot be downloaded here; the fixtures have its schema,
# not its lengths). simple-evals' grader template: 3181 characters at the pinned commit
# (healthbench_eval.py, sha256 in rvpo_repro.evals.healthbench_grader).
HEALTHBENCH: dict[str, Any] = {
    "conversations": {"main": 5000, "hard": 1000, "consensus": 3670},  # HealthBench paper, arXiv 2505.08775
    # per conversation, cluster items included; criterion 40.7 words on average; 2.6 turns on
    # average (github.com/kelkalot/openai-healthbench-analysis, an analysis of the released data)
    "items_per_conversation": 11.4,
    "criterion_words": 40.7,
    "conversation_tokens": 300,  # assumption: 2.6 turns before the reply, ~100-120 tokens a turn
    "template_chars": 3181,
    "reply_tokens": 60,  # assumption: the template's example replies are ~30 tokens; graders write longer
}

# Per task (the data set decides the token counts, the judge load and the benchmark's cost).
TASKS: dict[str, dict[str, float]] = {
    # RaR-Medicine questions, long-form medical answers (mean; max 1024); one HealthBench evaluation:
    # generation of 5000 answers (its grading is the paid grader's, priced apart)
    "rar_medicine": {
        "prompt_tokens": 150,
        "completion_tokens": 600,
        "judge_items": 10,  # judge calls per completion: rubric items per prompt (5-17)
        "judge_gpus": 2,  # vllm serve Qwen/Qwen2.5-7B-Instruct, two replicas
        "eval_hours": 0.4,
    },
    # RaR-Science, step-by-step answers; one GPQA-Diamond evaluation (198 questions, vLLM)
    "rar_science": {
        "prompt_tokens": 150,
        "completion_tokens": 700,
        "judge_items": 10,
        "judge_gpus": 2,
        "eval_hours": 0.1,
    },
    # RLLA-4k system prompt with tool specs; <think> + <tool_call> / <response>; BFCL single-turn
    "toolrl": {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "judge_items": 0,
        "judge_gpus": 0,
        "eval_hours": 0.25,
    },
}


# ------------------------------------------------------------------ tokens
def text_tokens(text: str) -> float:
    return len(text) / CHARS_PER_TOKEN


def chat_tokens(messages: list[dict[str, str]]) -> float:
    """Prompt tokens of a chat request: each message's text and format tokens, and the reply's cue."""
    return sum(text_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages) + REPLY_PRIMING_TOKENS


@functools.cache
def fixture_criterion_chars(domain: str = "medicine") -> float:
    """Mean characters of a rubric item's description as the reward sends it (kept items of the
    RaR fixture, in the real schema: "<Category> Criteria: <text>")."""
    from rvpo_repro.evals.synthetic_benchmarks import rar_records
    from rvpo_repro.tasks.rubric import select_items

    items = [it["description"] for r in rar_records(16, 0, domain) for it in select_items(r["rubric"], 17)]
    return sum(map(len, items)) / len(items)


def judge_prompt_tokens(question_tokens: float, response_tokens: float, criterion_chars: float) -> float:
    """Prompt tokens of one rubric-item request (`item_request`: the judge's system turn, then the
    question, the response and the criterion in one user turn)."""
    from rvpo_repro.tasks.rubric import item_request

    frame = chat_tokens(item_request("", "", "").to_messages())  # everything but the three texts
    return frame + question_tokens + response_tokens + criterion_chars / CHARS_PER_TOKEN


@dataclass(frozen=True)
class JudgeRoofline:
    """Calls per second per judge GPU: the roofline bound and the figure the cost model uses."""

    model: str
    prompt_tokens: float
    reply_tokens: float
    hit_rate: float
    prefill_s: float  # per call, compute-bound, on the tokens not read from the prefix cache
    decode_s: float  # per call, its share of the batch's bandwidth-bound decode steps
    batch: int  # sequences decoded together
    bound: float  # calls/s/GPU at the roofline
    used: float  # bound x efficiency

    def describe(self) -> str:
        return (
            f"judge {self.model}: {self.prompt_tokens:.0f} prompt tokens ({self.hit_rate:.0%} from the prefix cache)"
            f" + {self.reply_tokens:.0f} reply tokens a call; roofline {self.bound:.0f} calls/s/GPU"
            f" (prefill {self.prefill_s * 1e3:.1f} ms compute-bound + decode {self.decode_s * 1e3:.1f} ms"
            f" bandwidth-bound at batch {self.batch}), used {self.used:.0f} ({JUDGE['efficiency']:.0%})"
        )


def judge_roofline(
    model: str, prompt_tokens: float, concurrency: int, gpu: dict | None = None, judge: dict | None = None
) -> JudgeRoofline:
    """Roofline of a vLLM judge on one GPU. Prefill: 2 FLOPs per non-embedding parameter and token
    plus attention (4 x layers x hidden x context) for the tokens not in the prefix cache, at
    `bf16_flops` (only the last prompt token reaches the LM head). Decode: each step reads the weights
    once for the whole batch and each sequence's KV cache, at `bytes_per_s`, or computes 2 FLOPs per
    parameter and sequence, whichever is slower; the batch is the smallest of vLLM's `max_num_seqs`,
    the requests in flight per GPU (`concurrency`) and what the KV cache holds. Prefill and decode
    share the GPU, so their times add."""
    g, j = {**GPU, **(gpu or {})}, {**JUDGE, **(judge or {})}
    m = shipped_shape(model)
    if m is None:
        raise ValueError(
            f"no shape for judge model {model!r}; known: {sorted(shipped_shapes())} "
            f"(rvpo_repro/assets/{SHAPES_FILE.name})"
        )
    d, layers, reply = m.hidden_size, m.num_hidden_layers, float(j["reply_tokens"])
    embed = m.vocab_size * d
    body = m.params - embed * (1 if m.tie_word_embeddings else 2)  # no embedding, no LM head
    new = prompt_tokens * (1 - j["prefix_cache_hit_rate"])
    prefill_s = new * (2 * body + 4 * layers * d * prompt_tokens) / g["bf16_flops"]
    kv_per_token = m.kv_bytes_per_token(2)  # K and V of every layer, bf16
    weights = 2 * m.params
    kv_room = g["memory_bytes"] * j["gpu_memory_utilization"] - weights
    fits = int(kv_room // (kv_per_token * (prompt_tokens + reply)))
    batch = max(1, min(int(j["max_num_seqs"]), int(concurrency), fits))
    step_bytes = 2 * (body + embed) + batch * kv_per_token * (prompt_tokens + reply / 2)
    step_s = max(step_bytes / g["bytes_per_s"], batch * 2 * (body + embed) / g["bf16_flops"])
    decode_s = reply * step_s / batch
    bound = 1.0 / (prefill_s + decode_s)
    return JudgeRoofline(
        model, prompt_tokens, reply, j["prefix_cache_hit_rate"], prefill_s, decode_s, batch, bound,
        bound * j["efficiency"],
    )  # fmt: skip


def run_judge_roofline(cfg: Any, a: dict[str, Any] | None = None) -> JudgeRoofline | None:
    """The judge roofline of a composed rubric run (None when the run has no served judge): the
    reward's requests per item at the task's token counts, in flight `judge.max_concurrency` per
    training process, spread over the task's judge GPUs."""
    a = {**TASKS.get(str(cfg.task.name), {}), **(a or {})}
    if cfg.judge.backend == "none" or not a.get("judge_gpus"):
        return None
    domain = "science" if str(cfg.task.name) == "rar_science" else "medicine"
    prompt = judge_prompt_tokens(a["prompt_tokens"], a["completion_tokens"], fixture_criterion_chars(domain))
    in_flight = int(cfg.judge.get("max_concurrency") or 1) * max(int(cfg.model.num_gpus), 1)
    return judge_roofline(str(cfg.judge.model), prompt, math.ceil(in_flight / a["judge_gpus"]))


# ------------------------------------------------------------------ paid grader
def grader_prompt_tokens(conversation_tokens: float, response_tokens: float, item_chars: float) -> float:
    """Prompt tokens of one simple-evals grader call (`grader_messages`): its system message, the
    template, the conversation with the response as the last turn, and "[points] criterion"."""
    from rvpo_repro.evals.healthbench_grader import GRADER_SYSTEM, grader_messages

    marks = len("<<conversation>>") + len("<<rubric_item>>")
    template = "x" * (HEALTHBENCH["template_chars"] - marks) + "<<conversation>><<rubric_item>>"
    frame = chat_tokens(grader_messages([], "", {"points": 5, "criterion": ""}, template, GRADER_SYSTEM))
    return frame + conversation_tokens + response_tokens + item_chars / CHARS_PER_TOKEN


@dataclass(frozen=True)
class GraderCost:
    """Paid grader calls of one run and their price; `usd` is None for a model without a price."""

    model: str
    evaluations: int  # checkpoints graded: the best and the final (one when checkpoints are not evaluated)
    calls: float
    input_tokens: float
    output_tokens: float
    usd: float | None


def graded_evaluations(cfg: Any) -> int:
    """The grader grades the best checkpoint (chosen on the validation split with the training
    judge) and the final one; without checkpoint evaluation, the final one only."""
    return 2 if cfg.trainer.get("eval_checkpoints") else 1


def grader_cost(cfg: Any, a: dict[str, Any] | None = None) -> GraderCost | None:
    """The paid HealthBench grading of one run, or None when the run pays no grader (no HealthBench,
    or a grader served at a `base_url` of one's own)."""
    evals = list(cfg.task.get("evals") or [])
    g = cfg.get("eval_judge")
    if "healthbench" not in evals or g is None or g.backend != "openai" or g.get("base_url"):
        return None
    a = {**TASKS.get(str(cfg.task.name), {}), **(a or {})}
    hb = HEALTHBENCH
    source = str(cfg.task.get("healthbench_source") or "main")
    conversations = hb["conversations"].get(source, hb["conversations"]["main"])
    if cfg.task.get("healthbench_limit"):
        conversations = min(conversations, int(cfg.task.healthbench_limit))
    n = graded_evaluations(cfg)
    calls = n * conversations * int(cfg.task.get("eval_samples") or 1) * hb["items_per_conversation"]
    item_chars = hb["criterion_words"] * TOKENS_PER_WORD * CHARS_PER_TOKEN + len("[5] ")
    per_call = grader_prompt_tokens(hb["conversation_tokens"], a["completion_tokens"], item_chars)
    inp, out = calls * per_call, calls * hb["reply_tokens"]
    price = PRICES.get(str(g.model))
    usd = None if price is None else (inp * price["input_per_m"] + out * price["output_per_m"]) / 1e6
    return GraderCost(str(g.model), n, calls, inp, out, usd)


# ------------------------------------------------------------------ one run
@dataclass
class Estimate:
    """Expected cost of one run; zero for a model without a parameter count (CPU runs)."""

    step_seconds: float = 0.0
    hours: float = 0.0
    gpus: int = 0  # training GPUs plus judge GPUs
    gpu_hours: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)  # seconds per step by phase
    judge: JudgeRoofline | None = None
    grader: GraderCost | None = None


def estimate(cfg: Any, assumptions: dict[str, Any] | None = None) -> Estimate:
    """Hours and GPU-hours of one composed run; `assumptions` overrides HARDWARE and task keys."""
    name = str(cfg.model.name)
    task = str(cfg.task.name)
    if name not in HARDWARE["params"]:
        return Estimate()
    if task not in TASKS:
        raise ValueError(
            f"no cost assumptions for task {task!r}; known: {sorted(TASKS)} (rvpo_repro/sweep/cost.py)"
        )
    a = {**HARDWARE, **TASKS[task], **(assumptions or {})}
    gpus = max(int(cfg.model.num_gpus), 1)
    t = cfg.trainer
    per_step = cfg.model.per_device_train_batch_size * cfg.model.gradient_accumulation_steps * gpus
    generation_batch = t.get("generation_batch_size") or per_step
    tokens = per_step * (a["prompt_tokens"] + a["completion_tokens"])
    passes = 6.0  # forward + backward of the policy
    passes += 2.0 if t.beta > 0 else 0.0  # reference-model forward
    passes += 2.0 if (generation_batch > per_step or t.num_iterations > 1) else 0.0  # old log-probs
    train_s = passes * a["params"][name] * tokens / (gpus * a["peak_flops"] * a["mfu"])
    decode = gpus * a["decode_tokens_per_s"][name]
    gen_s = per_step * a["completion_tokens"] / decode
    judge = run_judge_roofline(cfg, a)
    judge_gpus = int(a["judge_gpus"]) if judge is not None else 0
    judge_rate = judge_gpus * judge.used if judge is not None else 0.0
    judge_s = per_step * a["judge_items"] / judge_rate if judge is not None else 0.0
    step_s = (gen_s + train_s + judge_s) * a["overhead"]
    # At each save (checkpoint evaluation on): the validation prompts, generated and judged; the
    # test benchmark for the graded checkpoints (best and final), or the final one only.
    saves = t.max_steps // t.save_steps if t.get("eval_checkpoints") else 0
    n_val = int(t.get("validation_prompts") or 0)
    val_s = n_val * a["completion_tokens"] / decode + (
        n_val * a["judge_items"] / judge_rate if judge_rate else 0
    )
    hours = t.max_steps * step_s / 3600 + saves * val_s / 3600 + graded_evaluations(cfg) * a["eval_hours"]
    return Estimate(
        step_seconds=step_s,
        hours=hours,
        gpus=gpus + judge_gpus,
        gpu_hours=hours * (gpus + judge_gpus),
        parts={"generate": gen_s, "train": train_s, "judge": judge_s},
        judge=judge,
        grader=grader_cost(cfg, a),
    )
