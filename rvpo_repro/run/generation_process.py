"""Generation from a saved policy, in a process of its own when training ran in this one.

A run evaluates its checkpoints and its final model after training, from the weights on disk
(`SavedPolicy`: the published `model/` or a checkpoint's export). Where the training process held
an engine or device memory (a colocated vLLM engine, the other ranks of a distributed job, a GPU),
generation runs in a fresh Python process (`python -m rvpo_repro.run.generation_process`): it owns
the whole device, starts vLLM with nothing else resident, and leaves nothing behind when it exits.
A second engine is never started inside a training process, and no rank generates alone on
weights sharded across ranks. A single CPU process without vLLM generates in place: there is
nothing to free there, and a process start (about 4 s of CPU) per evaluation would be pure cost.

The worker reads a JSON spec (back end, the policy's model config, prompts, sampling settings)
and writes the generations as JSON; a failure it can name (vLLM that cannot start) comes back as
one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rvpo_repro.generation import GenerationSettings, generate_hf, generate_vllm, pick_backend
from rvpo_repro.run.errors import RunFailed

# Variables that make a process a rank of a distributed job (torchrun, accelerate launch, TRL's
# colocated vLLM): the worker is a process of its own, not one more rank.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
                  "ROLE_WORLD_SIZE", "GROUP_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")  # fmt: skip
RANK_PREFIXES = ("TORCHELASTIC_", "ACCELERATE_", "TORCH_NCCL_")


class GenerationProcessError(RunFailed):
    """The generation process failed; `str()` is its one line. The run is not sealed and keeps its
    published model and checkpoint exports: the same command finishes the evaluation."""


@dataclass(frozen=True)
class SavedPolicy:
    """A policy on disk: `path` holds its weights and tokenizer; `model` is the run's model group
    (dtype, attention implementation) as a plain dict; `cache_dir` the run's cache."""

    path: str
    model: dict
    cache_dir: str

    @classmethod
    def of_run(cls, cfg: Any, path: str | Path) -> SavedPolicy:
        from omegaconf import OmegaConf

        model = OmegaConf.to_container(cfg.model, resolve=True)
        model.update(source="pretrained", path=str(path), revision=None)
        return cls(str(path), model, str(cfg.paths.cache_dir))

    def load_model(self) -> Any:
        from omegaconf import OmegaConf

        from rvpo_repro.models import load_model

        return load_model(OmegaConf.create(self.model), self.cache_dir, training=False)


def needs_fresh_process(cfg: Any, world_size: int) -> bool:
    """Whether evaluation after training generates in a fresh process (module docstring)."""
    import torch

    return bool(cfg.trainer.get("use_vllm")) or world_size > 1 or torch.cuda.is_available()


def generate_saved(
    backend: str, policy: SavedPolicy, tokenizer: Any, prompts: list, s: GenerationSettings, fresh: bool
) -> list[list[str]]:
    """`s.num_samples` completions per prompt from `policy`, here or in a fresh process."""
    name = pick_backend(backend)
    if fresh:
        return _in_fresh_process(name, policy, prompts, s)
    if name == "vllm":
        return generate_vllm(policy.path, tokenizer, prompts, s)
    model = policy.load_model()
    try:
        return generate_hf(model, tokenizer, prompts, s)
    finally:
        del model


def worker_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: this process's) without what makes a process a rank of a job."""
    env = dict(os.environ if environ is None else environ)
    return {k: v for k, v in env.items() if k not in RANK_VARIABLES and not k.startswith(RANK_PREFIXES)}


def _in_fresh_process(
    backend: str, policy: SavedPolicy, prompts: list, s: GenerationSettings
) -> list[list[str]]:
    with tempfile.TemporaryDirectory(prefix="rvpo-generate-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(
            json.dumps(
                {"backend": backend, "policy": asdict(policy), "prompts": prompts, "settings": asdict(s)}
            ),
            encoding="utf-8",
        )
        cmd = [sys.executable, "-m", "rvpo_repro.run.generation_process", str(spec), str(out)]
        code = subprocess.run(cmd, env=worker_env(), check=False).returncode
        answer = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    if code != 0 or "generations" not in answer:
        why = (
            answer.get("error")
            or f"the generation process for {policy.path} exited with code {code} (output above)"
        )
        raise GenerationProcessError(
            f"{why}; evaluation stopped, the trained model and checkpoints are kept: rerun the same command to finish it"
        )
    return answer["generations"]


def main(argv: list[str] | None = None) -> int:
    spec_path, out_path = (argv or sys.argv[1:])[:2]
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    policy = SavedPolicy(**spec["policy"])
    settings = GenerationSettings(**spec["settings"])
    from rvpo_repro.generation import VLLMStartError
    from rvpo_repro.io import atomic_write

    try:
        tokenizer = None
        if spec["backend"] == "hf":
            from omegaconf import OmegaConf

            from rvpo_repro.models import load_tokenizer

            tokenizer = load_tokenizer(OmegaConf.create(policy.model), policy.cache_dir)
        texts = generate_saved(spec["backend"], policy, tokenizer, spec["prompts"], settings, fresh=False)
    except VLLMStartError as exc:
        atomic_write(Path(out_path), json.dumps({"error": str(exc)}))
        return 1
    atomic_write(Path(out_path), json.dumps({"generations": texts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
