"""The held-out validation split and checkpoint selection (rvpo_repro.run.checkpoint_eval)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datasets import Dataset
from helpers.toy_runs import toy_smoke_overrides
from omegaconf import OmegaConf

from rvpo_repro.rewards import RewardChannel
from rvpo_repro.run import checkpoint_eval as ce
from rvpo_repro.run.checkpoints import SEAL
from rvpo_repro.run.record import load_record
from rvpo_repro.tasks.base import TaskData


def _cfg(**trainer):
    return OmegaConf.create(
        {
            "trainer": {"eval_checkpoints": True, "max_completion_length": 8, **trainer},
            "eval": {
                "backend": "hf",
                "max_new_tokens": None,
                "temperature": 0.0,
                "top_p": 1.0,
                "batch_size": 4,
                "seed": 0,
            },
            "aggregator": {"weights": None},
        }
    )


def _data(n=20):
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}], "target": f"t{i}"} for i in range(n)]
    return TaskData(train_dataset=Dataset.from_list(rows), eval_dataset=None, reward_funcs=[])


def test_validation_prompts_are_a_seeded_draw_held_out_of_training():
    data, val, facts = ce.carve_validation(_cfg(validation_prompts=5, validation_seed=7), _data())
    again = ce.carve_validation(_cfg(validation_prompts=5, validation_seed=7), _data())[1]
    other = ce.carve_validation(_cfg(validation_prompts=5, validation_seed=8), _data())[1]
    assert len(val) == 5 and len(data.train_dataset) == 15 and facts["prompts"] == 5 and facts["of"] == 20
    assert set(val["target"]).isdisjoint(data.train_dataset["target"])
    assert set(val["target"]) | set(data.train_dataset["target"]) == {f"t{i}" for i in range(20)}
    assert val["target"] == again["target"] and val["target"] != other["target"]
    assert [f"t{i}" for i in facts["indices"]] == val["target"]


def test_no_split_by_default_and_bad_sizes_refused():
    data = _data()
    assert ce.carve_validation(_cfg(), data) == (data, None, None)
    with pytest.raises(ValueError, match="validation_prompts=20: the task has only 20"):
        ce.carve_validation(_cfg(validation_prompts=20), data)
    with pytest.raises(ValueError, match="needs trainer.eval_checkpoints=true"):
        ce.carve_validation(_cfg(validation_prompts=2, eval_checkpoints=False), data)


def test_validation_reward_is_the_weighted_mean_of_normalised_present_channels():
    texts = {"q0": "good", "q1": "bad", "q2": "none"}

    def answer(prompts, settings):
        return [[texts[p[0]["content"]]] for p in prompts]

    def fmt(prompts, completions, **kw):  # {0, 1}
        return [1.0 if c[0]["content"] == "good" else 0.0 for c in completions]

    def correctness(prompts, completions, target, **kw):  # [-3, 3]; absent for "none"
        return [{"good": 3.0, "bad": -1.0}.get(c[0]["content"]) for c in completions]

    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": q}], "target": q} for q in texts])
    data = TaskData(
        train_dataset=rows,
        eval_dataset=None,
        reward_funcs=[fmt, correctness],
        channels=[RewardChannel("fmt", binary=True), RewardChannel("correctness", low=-3.0, high=3.0)],
    )
    cfg = _cfg()
    cfg.aggregator.weights = [1.0, 3.0]
    tok = type(
        "Tok", (), {"__call__": lambda self, t, add_special_tokens=False: {"input_ids": [0] * len(t)}}
    )()
    m = ce.validation_metrics(cfg, data, rows, answer, tokenizer=tok)
    # q0: (1*1 + 3*1)/4 = 1; q1: (1*0 + 3*(2/6))/4 = 0.25; q2: only fmt present, 0
    assert m["validation/reward"] == pytest.approx((1 + 0.25 + 0) / 3)
    assert m["validation/fmt"] == pytest.approx(1 / 3) and m["validation/correctness"] == pytest.approx(1.0)
    assert m["validation/n"] == 3


def test_best_checkpoint_prefers_validation_and_labels_test_selection_optimistic():
    rows = [
        {"step": 5, "metrics": {"m": 0.9}, "validation": {"validation/reward": 0.1}},
        {"step": 10, "metrics": {"m": 0.5}, "validation": {"validation/reward": 0.7}},
    ]
    assert ce.best_checkpoint(rows, "m", (10, 0.5)) == (10, 0.5, ce.VALIDATION)
    plain = [{"step": r["step"], "metrics": r["metrics"]} for r in rows]
    assert ce.best_checkpoint(plain, "m", (10, 0.5)) == (5, 0.9, ce.OPTIMISTIC)
    nan = [{**r, "validation": {"validation/reward": math.nan}} for r in rows]
    assert ce.best_checkpoint(nan, "m", (10, 0.5))[2] == ce.OPTIMISTIC


@pytest.mark.slow
def test_a_run_scores_its_validation_split_at_every_save(tmp_path, cache_dir):
    from rvpo_repro.config import compose
    from rvpo_repro.run.job import train_and_evaluate

    extra = ("trainer.eval_checkpoints=true", "trainer.validation_prompts=4")
    cfg = compose(toy_smoke_overrides(tmp_path, cache_dir, *extra, process=False))
    train_and_evaluate(cfg)
    (run_dir,) = list(Path(tmp_path / "results" / "runs" / "toy_smoke").iterdir())
    rec = load_record(run_dir)
    split = rec.extra["validation_split"]
    assert split["prompts"] == 4 and split["seed"] == 0 and len(split["indices"]) == 4
    evals = rec.extra["checkpoint_evals"]
    assert [r["step"] for r in evals] == [5, 10]
    for r in evals:
        assert r["validation"]["validation/n"] == 4 and 0.0 <= r["validation"]["validation/reward"] <= 1.0
    # the test set (the grader's) sees the best checkpoint and the final model only
    best = ce.best_validated_step(evals)
    assert [r["step"] for r in evals if "metrics" in r] == ([best] if best != 10 else [])
    # the best checkpoint's weights stay for the user; the other exports go once the record is sealed
    assert sorted(p.name for p in (run_dir / ce.EXPORTS).iterdir()) == [f"step-{best}"]
    assert (run_dir / ce.EXPORTS / f"step-{best}" / "model.safetensors").is_file()
    assert rec.extra["evaluation"] == {"backend": "hf", "process": "in place"}  # one CPU process, no vLLM


def test_item_weights_of_a_multichannel_reward_weight_the_validation_reward():
    from rvpo_repro.rewards import MultiChannelReward

    class Items(MultiChannelReward):
        channels = [RewardChannel("item_0", binary=True), RewardChannel("item_1", binary=True)]

        def score(self, prompts, completions, w, **kw):
            return [[1.0, 0.0] for _ in completions]

        def item_weights(self, inputs):
            return [[float(x["w"]), 1.0] for x in inputs]

    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": "q"}], "w": w} for w in (3.0, 1.0)])
    data = TaskData(train_dataset=rows, eval_dataset=None, reward_funcs=[Items()], channels=Items.channels)
    tok = type("Tok", (), {"__call__": lambda self, t, add_special_tokens=False: {"input_ids": [0]}})()
    m = ce.validation_metrics(_cfg(), data, rows, lambda prompts, s: [["a"] for _ in prompts], tokenizer=tok)
    assert m["validation/reward"] == pytest.approx((3 / 4 + 1 / 2) / 2)


# ---- evaluation after training, from the exports


def _checkpoint(path: Path, weights: bytes = b"w") -> Path:
    path.mkdir(parents=True)
    for name, body in {
        "model.safetensors": weights,
        "config.json": b"{}",
        "tokenizer.json": b"{}",
        "chat_template.jinja": b"x",
        "optimizer.pt": b"o" * 100,
        "scheduler.pt": b"s",
        "rng_state_0.pth": b"r",
        "trainer_state.json": b"{}",
        "training_args.bin": b"a",
        "zero_to_fp32.py": b"#",
    }.items():
        (path / name).write_bytes(body)
    (path / "global_step4").mkdir()
    (path / "global_step4" / "zero_pp_rank_0_mp_rank_00_optim_states.pt").write_bytes(b"z")
    return path


def test_an_export_links_the_policy_only_and_outlives_the_checkpoint(tmp_path):
    ckpt = _checkpoint(tmp_path / "checkpoints" / "checkpoint-4")
    dest = ce.export_checkpoint(ckpt, ce.export_path(tmp_path, 4))
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted(
        ["model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", SEAL]
    )
    assert (dest / "model.safetensors").stat().st_ino == (ckpt / "model.safetensors").stat().st_ino  # a link
    import shutil

    shutil.rmtree(ckpt)  # rotated out by save_total_limit
    assert (dest / "model.safetensors").read_bytes() == b"w" and ce.exports(tmp_path) == {4: dest}


def test_a_checkpoint_without_consolidated_weights_is_named(tmp_path):
    ckpt = _checkpoint(tmp_path / "checkpoint-2")
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="zero3_save_16bit_model"):
        ce.export_checkpoint(ckpt, ce.export_path(tmp_path, 2))


def test_a_half_made_export_is_set_aside_not_evaluated(tmp_path):
    ce.export_checkpoint(_checkpoint(tmp_path / "c2"), ce.export_path(tmp_path, 2))
    dest = ce.export_checkpoint(_checkpoint(tmp_path / "c4"), ce.export_path(tmp_path, 4))
    (dest / SEAL).unlink()
    assert list(ce.exports(tmp_path)) == [2]
    assert (tmp_path / "broken" / "step-4").is_dir()


def _cfg_run(tmp_path, validation: bool):
    cfg = _cfg(validation_prompts=2 if validation else 0)
    cfg.model = {"name": "m", "dtype": "float32"}
    cfg.paths = {"cache_dir": str(tmp_path / "cache")}
    return cfg


def _quality(policy):
    return float((Path(policy.path) / "model.safetensors").read_bytes().decode())


def test_with_a_validation_split_the_grader_sees_the_best_checkpoint_only(tmp_path):
    """Validation (training judge) at every save; the test set at the best one; reruns redo nothing."""
    for step, q in [(2, "0.2"), (4, "0.9"), (6, "0.5")]:
        ce.export_checkpoint(_checkpoint(tmp_path / f"c{step}", q.encode()), ce.export_path(tmp_path, step))
    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": "q"}]}] * 2)
    data = TaskData(
        train_dataset=rows,
        eval_dataset=None,
        reward_funcs=[lambda prompts, completions, **kw: [float(c[0]["content"]) for c in completions]],
        channels=[RewardChannel("quality", low=0.0, high=1.0)],
    )
    tok = type("Tok", (), {"__call__": lambda self, t, add_special_tokens=False: {"input_ids": [0]}})()
    tested, answered = [], []

    def test(policy):
        tested.append(Path(policy.path).name)
        return {"m": _quality(policy)}

    def answers(policy):
        answered.append(Path(policy.path).name)
        return lambda prompts, s: [[str(_quality(policy))] for _ in prompts]

    cfg = _cfg_run(tmp_path, validation=True)
    out = ce.evaluate_saved_checkpoints(cfg, data, rows, tmp_path, tok, answers, test)
    assert [r["step"] for r in out] == [2, 4, 6] and tested == []
    assert [round(r["validation"]["validation/reward"], 6) for r in out] == [0.2, 0.9, 0.5]
    ce.grade_best(tmp_path, cfg, final_step=6, test=test)
    assert tested == ["step-4"]
    rows_now = ce.read_checkpoint_evals(tmp_path / ce.EVALS_FILE)
    assert ce.best_checkpoint(rows_now, "m", (6, 0.5)) == (4, 0.9, ce.VALIDATION)
    # a rerun after a kill: every row is there, nothing is generated or graded again
    ce.evaluate_saved_checkpoints(cfg, data, rows, tmp_path, tok, answers, test)
    ce.grade_best(tmp_path, cfg, final_step=6, test=test)
    assert answered == ["step-2", "step-4", "step-6"] and tested == ["step-4"]
    ce.prune_exports(tmp_path, ce.best_validated_step(rows_now))
    assert list(ce.exports(tmp_path)) == [4]


def test_without_a_validation_split_every_save_is_tested(tmp_path):
    for step, q in [(2, "0.2"), (4, "0.9")]:
        ce.export_checkpoint(_checkpoint(tmp_path / f"c{step}", q.encode()), ce.export_path(tmp_path, step))
    out = ce.evaluate_saved_checkpoints(
        _cfg_run(tmp_path, validation=False),
        _data(),
        None,
        tmp_path,
        None,
        None,
        lambda p: {"m": _quality(p)},
    )
    assert [(r["step"], r["metrics"]["m"]) for r in out] == [(2, 0.2), (4, 0.9)]
    assert ce.best_checkpoint(out, "m", (4, 0.9)) == (4, 0.9, ce.OPTIMISTIC)


def test_an_export_changed_after_its_seal_is_set_aside_not_evaluated(tmp_path):
    """Same size, other bytes: the sha256 in the seal tells, before any weights are loaded."""
    for step in (2, 4):
        ce.export_checkpoint(_checkpoint(tmp_path / f"c{step}", b"0.5"), ce.export_path(tmp_path, step))
    (ce.export_path(tmp_path, 4) / "model.safetensors").unlink()  # a hard link: replace, not rewrite
    (ce.export_path(tmp_path, 4) / "model.safetensors").write_bytes(b"0.9")
    tested = []
    out = ce.evaluate_saved_checkpoints(
        _cfg_run(tmp_path, validation=False), _data(), None, tmp_path, None, None,
        lambda p: tested.append(Path(p.path).name) or {"m": _quality(p)},
    )  # fmt: skip
    assert tested == ["step-2"] and [r["step"] for r in out] == [2]
    assert (tmp_path / "broken" / "step-4").is_dir()


def test_a_failing_generation_process_is_one_line_and_keeps_the_run(tmp_path, monkeypatch):
    """The worker exits non-zero: the job's one-line error (exit 1), saying the rerun finishes it."""
    import subprocess as sp

    from rvpo_repro.cli import exit_codes
    from rvpo_repro.generation import GenerationSettings
    from rvpo_repro.run import generation_process as gp

    monkeypatch.setattr(gp.subprocess, "run", lambda *a, **k: sp.CompletedProcess(a, 3))
    policy = gp.SavedPolicy(str(tmp_path / "model"), {"name": "m"}, str(tmp_path))
    with pytest.raises(gp.GenerationProcessError) as info:
        gp.generate_saved(
            "hf", policy, None, [[{"role": "user", "content": "q"}]], GenerationSettings(), fresh=True
        )
    assert "exited with code 3" in str(info.value) and "rerun the same command" in str(info.value)
    assert next(c for t, c in exit_codes().items() if isinstance(info.value, t)) == 1


def test_an_export_takes_the_digests_of_its_sealed_checkpoint(tmp_path):
    from rvpo_repro.run.checkpoints import read_seal, seal, why_incomplete

    ckpt = _checkpoint(tmp_path / "checkpoint-2")
    seal(ckpt, world_size=2)
    dest = ce.export_checkpoint(ckpt, ce.export_path(tmp_path, 2))
    mine, theirs = read_seal(dest)["files"], read_seal(ckpt)["files"]
    assert mine == {n: theirs[n] for n in mine} and "optimizer.pt" not in mine
    assert why_incomplete(dest) is None  # the reused digests are the export's own bytes'
