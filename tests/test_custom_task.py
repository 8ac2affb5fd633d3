"""The `custom` task: import paths, signature, column and return checks, hashing, data, evaluation."""

from __future__ import annotations

import itertools
import json
import sys
import textwrap
from pathlib import Path

import pytest

from rvpo_repro.config import compose
from rvpo_repro.rewards import RewardChannel
from rvpo_repro.run.record import new_record, run_dir
from rvpo_repro.tasks import TaskInputError, get_task, prepare_config
from rvpo_repro.tasks.custom.task import RewardSpec, _specs, load_rewards
from rvpo_repro.tasks.custom.user_code import (
    CheckedReward,
    build_reward,
    check_signature,
    missing_columns,
    resolve,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_DATA = REPO / "examples" / "prompts.jsonl"
_names = itertools.count()


@pytest.fixture
def cwd(tmp_path, monkeypatch):
    """A working directory for user modules; sys.path is restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def module(where: Path, source: str) -> str:
    """Write a uniquely named module into `where`; returns its name."""
    name = f"user_rewards_{next(_names)}_{id(where) % 10_000}"
    (where / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    return name


REWARDS = """
    from rvpo_repro.rewards import MultiChannelReward, RewardChannel

    def has_digit(prompts, completions, **kwargs):
        return [float(any(ch.isdigit() for ch in c[0]["content"])) for c in completions]

    def length(completions, scale=1.0):
        return [scale * len(c[0]["content"]) for c in completions]

    def needs_answer(prompts, completions, answer):
        return [float(c[0]["content"] == a) for c, a in zip(completions, answer)]

    def positional(prompts, completions, /):
        return [0.0] * len(completions)

    def no_completions(prompts, text):
        return [0.0]

    def too_short(prompts, completions, **kwargs):
        return [1.0] * (len(completions) - 1)

    def too_long(prompts, completions, **kwargs):
        return [1.0] * (len(completions) + 1)

    def says_yes(prompts, completions, **kwargs):
        return [1.0] + ["yes"] * (len(completions) - 1)

    def scalar(prompts, completions, **kwargs):
        return 1.0

    def maybe(prompts, completions, **kwargs):
        return [None if i % 2 else True for i in range(len(completions))]

    class Pair(MultiChannelReward):
        def __init__(self, high=1.0):
            self.channels = [RewardChannel("a", binary=True), RewardChannel("b", high=high)]

        def score(self, prompts, completions, **kwargs):
            return [[1.0, 0.5] for _ in completions]

    class BadPair(Pair):
        def score(self, prompts, completions, **kwargs):
            return [[1.0] for _ in completions]

    class Helper:
        @staticmethod
        def method(prompts, completions, **kwargs):
            return [0.0] * len(completions)

    def make_pair():
        return Pair(high=2.0)

    PAIR = Pair()
"""


def chat(*texts: str) -> list:
    return [[{"role": "assistant", "content": t}] for t in texts]


# ----------------------------------------------------------------------------------- resolution
def test_resolve_colon_dotted_and_nested_paths(cwd):
    name = module(cwd, REWARDS)
    assert resolve(f"{name}:has_digit").__name__ == "has_digit"
    assert resolve(f"{name}.has_digit") is resolve(f"{name}:has_digit")
    assert resolve(f"{name}:Helper.method") is resolve(f"{name}.Helper.method")
    assert resolve("rvpo_repro.rewards:completion_text").__module__ == "rvpo_repro.rewards"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("no_such_module_xyz:f", "no module 'no_such_module_xyz' importable from the working directory"),
        ("no_such_module_xyz.f", "no module 'no_such_module_xyz' importable"),
        ("{mod}:missing", "has no attribute 'missing'"),
        ("{mod}.Helper.nope", "'{mod}.Helper' has no attribute 'nope'"),
        ("just_a_name", "expected 'package.module:function'"),
        ("{broken}:f", "importing module '{broken}' failed: ModuleNotFoundError: No module named 'numpyy'"),
    ],
)
def test_unresolvable_path_names_module_and_attribute(cwd, path, expected):
    mod, broken = module(cwd, REWARDS), module(cwd, "import numpyy\n")
    with pytest.raises(TaskInputError) as e:
        resolve(path.format(mod=mod, broken=broken))
    msg = str(e.value)
    assert expected.format(mod=mod, broken=broken) in msg and "\n" not in msg


# ---------------------------------------------------------------------------------- signatures
def test_signature_checks(cwd):
    mod = module(cwd, REWARDS)
    check_signature(resolve(f"{mod}:has_digit"), "r")
    check_signature(resolve(f"{mod}:length"), "r")  # no prompts, no **kwargs: fine, called by keyword
    with pytest.raises(TaskInputError, match=r"r: parameter 'prompts' is positional-only"):
        check_signature(resolve(f"{mod}:positional"), "r")
    with pytest.raises(TaskInputError, match=r"r: signature \(prompts, text\) takes neither `completions`"):
        check_signature(resolve(f"{mod}:no_completions"), "r")
    with pytest.raises(TaskInputError, match="cannot read its signature"):
        check_signature(max, "r")


def test_required_parameters_must_be_columns(cwd):
    mod = module(cwd, REWARDS)
    sig = check_signature(resolve(f"{mod}:needs_answer"), "r")
    assert missing_columns(sig, ["topic"]) == ["answer"]
    assert missing_columns(sig, ["answer"]) == []
    assert missing_columns(check_signature(resolve(f"{mod}:has_digit"), "r"), []) == []


def test_only_accepted_keywords_are_passed(cwd):
    mod = module(cwd, REWARDS)
    f = CheckedReward(resolve(f"{mod}:length"), "length", "r")
    # TRL passes prompts, completion_ids, trainer_state, columns...; `length` takes completions only
    assert f(["p", "p"], chat("ab", "abc"), completion_ids=[[1], [2]], topic=["x", "y"]) == [2.0, 3.0]


# --------------------------------------------------------------------------------- return checks
@pytest.mark.parametrize(
    "func, expected",
    [
        ("too_short", "reward 'x': returned 2 values for 3 completions; expected one per completion"),
        ("too_long", "reward 'x': returned 4 values for 3 completions; expected one per completion"),
        ("says_yes", "reward 'x': returned 'yes' (str) for row 1 (id 'b'); expected a number or None"),
        ("scalar", "reward 'x': returned float '1.0'; expected a list of one number per completion"),
    ],
)
def test_wrong_returns_name_function_and_row(cwd, func, expected):
    mod = module(cwd, REWARDS)
    f = CheckedReward(resolve(f"{mod}:{func}"), func, "reward 'x'")
    with pytest.raises(TaskInputError) as e:
        f(["p"] * 3, chat("a", "b", "c"), id=["a", "b", "c"])
    assert str(e.value) == expected


def test_none_and_bool_values_pass(cwd):
    mod = module(cwd, REWARDS)
    f = CheckedReward(resolve(f"{mod}:maybe"), "maybe", "r")
    assert f(["p"] * 3, chat("a", "b", "c")) == [1.0, None, 1.0]


def test_multi_channel_class_instance_factory_and_bad_width(cwd):
    mod = module(cwd, REWARDS)
    specs = _specs(
        [f"{mod}:Pair", f"{mod}.PAIR", {"path": f"{mod}:make_pair", "factory": True}], RewardSpec, "k"
    )
    with pytest.raises(TaskInputError, match=r"channel names \['a', 'b'\] repeat"):
        load_rewards(specs)
    (loaded,) = load_rewards([specs[2]])
    assert [c.high for c in loaded.channels] == [1.0, 2.0]
    assert loaded.reward(["p"], chat("x")) == [[1.0, 0.5]]
    (bad,) = load_rewards(_specs([f"{mod}:BadPair"], RewardSpec, "k"))
    with pytest.raises(TaskInputError, match=r"score returned \[1.0\] for row 0; expected 2 values"):
        bad.reward(["p"], chat("x"))
    with pytest.raises(TaskInputError, match=r"\['binary'\] apply to a single-channel reward"):
        load_rewards(_specs([{"path": f"{mod}:Pair", "binary": True}], RewardSpec, "k"))


def test_kwargs_bind_to_functions_and_construct_classes(cwd):
    mod = module(cwd, REWARDS)
    (r,) = load_rewards(_specs([{"path": f"{mod}:length", "kwargs": {"scale": 2}}], RewardSpec, "k"))
    assert r.channels == [RewardChannel("length")] and r.reward(["p"], chat("abc")) == [6.0]
    with pytest.raises(TaskInputError, match=r"kwargs \['size'\] are not parameters of"):
        build_reward(resolve(f"{mod}:length"), "p", {"size": 2}, factory=False)
    with pytest.raises(TaskInputError, match="a class that is not a rvpo_repro.rewards.MultiChannelReward"):
        build_reward(resolve(f"{mod}:Helper"), "p", {}, factory=False)


def test_spec_entries_bare_or_structured_and_typos_named():
    specs = _specs(["m:f", {"path": "m.g", "name": "g2", "binary": True, "low": 0, "high": 2, "weight": 3}],
                   RewardSpec, "task.rewards")  # fmt: skip
    assert specs[0] == RewardSpec(path="m:f")
    assert (specs[1].name, specs[1].binary, specs[1].high, specs[1].weight) == ("g2", True, 2.0, 3.0)
    with pytest.raises(TaskInputError, match=r"task.rewards\[1\]: .*binery"):
        _specs(["m:f", {"path": "m:g", "binery": True}], RewardSpec, "task.rewards")
    with pytest.raises(TaskInputError, match=r"task.rewards\[0\]: .*path"):
        _specs([{"name": "x"}], RewardSpec, "task.rewards")


# ------------------------------------------------------------------------- config and hashing
@pytest.fixture
def custom_cfg(compose_cfg, cwd):
    """A prepared `custom` task config of a run under the working directory."""

    def make(*overrides: str, data: Path = EXAMPLE_DATA):
        cfg = compose_cfg("task=custom", f"task.train_source={data}", *overrides, root=cwd)
        prepare_config(cfg)
        return cfg

    return make


def test_prepare_pins_code_and_data_hashes_into_the_run_id(cwd, custom_cfg):
    mod = module(cwd, REWARDS)
    rewards = f"task.rewards=[{mod}:has_digit,{mod}.length]"
    first = custom_cfg(rewards)
    digest = first.task.code_hashes[f"{mod}:has_digit"]
    assert len(digest) == 64 and first.task.data_hashes["train_source"]
    assert run_dir(custom_cfg(rewards)) == run_dir(first)  # stable

    path = cwd / f"{mod}.py"
    path.write_text(path.read_text() + "\nTHRESHOLD = 2  # a constant beside the rewards changes them\n")
    edited = custom_cfg(rewards)
    assert edited.task.code_hashes[f"{mod}:has_digit"] != digest
    assert run_dir(edited) != run_dir(first)
    rec = new_record(edited, {}, started_at="t")
    assert rec.config["task"]["code_hashes"] == dict(edited.task.code_hashes)

    data = cwd / "data.jsonl"
    data.write_text(EXAMPLE_DATA.read_text())
    before = run_dir(custom_cfg(rewards, data=data))
    data.write_text(EXAMPLE_DATA.read_text().replace("moon", "sun"))
    assert run_dir(custom_cfg(rewards, data=data)) != before


def test_weights_reach_the_aggregator_in_one_place(cwd, custom_cfg):
    mod = module(cwd, REWARDS)
    cfg = custom_cfg(f"task.rewards=[{{path:{mod}.has_digit,weight:3}},{mod}:Pair]")
    assert list(cfg.aggregator.weights) == [3.0, 1.0, 1.0]
    prepare_config(cfg)  # idempotent
    with pytest.raises(TaskInputError, match=r"set them in one place"):
        custom_cfg(f"task.rewards=[{{path:{mod}.has_digit,weight:3}}]", "aggregator.weights=[1.0]")


def test_prepare_requires_source_and_rewards(cwd, custom_cfg):
    with pytest.raises(TaskInputError, match="task.train_source: required"):
        prepare_config(compose(["task=custom", "task.rewards=[m:f]"]))
    with pytest.raises(TaskInputError, match="task.rewards: give at least one"):
        custom_cfg()


# ------------------------------------------------------------------------------------------ data
@pytest.fixture
def custom_task(custom_cfg):
    """The `custom` task of `custom_cfg(*overrides, data=...)`."""
    return lambda *overrides, data=EXAMPLE_DATA: get_task(custom_cfg(*overrides, data=data).task)


def test_text_prompts_become_chat_and_eval_is_held_out(cwd, custom_task):
    mod = module(cwd, REWARDS)
    task = custom_task(f"task.rewards=[{mod}:has_digit]", "task.system_prompt=Be brief.")
    data = task.build(None, seed=0)
    assert len(data.train_dataset) == 32 and len(data.eval_dataset) == 8
    assert not set(data.train_dataset["id"]) & set(data.eval_dataset["id"])
    prompt = data.train_dataset[0]["prompt"]
    assert prompt[0] == {"role": "system", "content": "Be brief."} and prompt[1]["role"] == "user"
    assert data.channels == [RewardChannel("has_digit")]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "dir"])
def test_csv_parquet_and_directory_sources(cwd, fmt, custom_task):
    import pandas as pd

    mod = module(cwd, REWARDS)
    df = pd.DataFrame({"question": [f"q{i}" for i in range(6)], "answer": [str(i) for i in range(6)]})
    if fmt == "dir":
        (cwd / "d").mkdir()
        df[:4].to_json(cwd / "d" / "train.jsonl", orient="records", lines=True)
        df[4:].to_json(cwd / "d" / "test.jsonl", orient="records", lines=True)
        extra = ["task.eval_source=d"]
        path = cwd / "d"
    else:
        path = cwd / f"data.{fmt}"
        df.to_csv(path, index=False) if fmt == "csv" else df.to_parquet(path)
        extra = []
    task = custom_task(f"task.rewards=[{mod}:needs_answer]", "task.prompt_column=question", *extra, data=path)
    data = task.build(None, seed=0)
    assert len(data.train_dataset) + len(data.eval_dataset) == (6 if fmt != "dir" else 6)
    assert (
        data.train_dataset[0]["prompt"][-1]["content"].startswith("q")
        and "answer" in data.train_dataset.column_names
    )


def test_data_errors_name_source_column_and_row(cwd, custom_cfg, custom_task):
    mod = module(cwd, REWARDS)
    reward = f"task.rewards=[{mod}:has_digit]"
    with pytest.raises(TaskInputError, match=r"data source 'nope.jsonl': no such file"):
        custom_cfg(reward, "task.eval_source=nope.jsonl")
    with pytest.raises(
        TaskInputError,
        match=r"no prompt column 'question' \(task.prompt_column\); columns: \['id', 'prompt', 'topic'\]",
    ):
        custom_task(reward, "task.prompt_column=question").build(None, seed=0)
    bad = cwd / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"prompt": 3}) + "\n")
    with pytest.raises(
        TaskInputError, match=r"row 1: the prompt is int 3; expected text or a non-empty list"
    ):
        custom_task(reward, data=bad).build(None, seed=0)
    with pytest.raises(
        TaskInputError, match=r"task.eval_source='someorg/no-such-set' \(split 'test'\): could not be read"
    ):
        custom_task(reward, "task.eval_source=someorg/no-such-set").build(None, seed=0)  # offline in tests
    (cwd / "notes.md").write_text("x")
    with pytest.raises(TaskInputError, match=r"unknown file type '.md'; expected one of \['.csv', '.json'"):
        custom_task(reward, data=cwd / "notes.md").build(None, seed=0)
    dup = cwd / "dup.jsonl"
    dup.write_text("".join(json.dumps({"id": "a", "prompt": p}) + "\n" for p in "xyz"))
    with pytest.raises(TaskInputError, match=r"rows 0 and 1 share the id 'a'"):
        custom_task(reward, data=dup).build(None, seed=0)


def test_missing_column_names_function_and_column(cwd, custom_task):
    mod = module(cwd, REWARDS)
    task = custom_task(f"task.rewards=[{mod}:needs_answer]")
    with pytest.raises(TaskInputError) as e:
        task.build(None, seed=0)
    assert str(e.value) == (
        f"reward '{mod}:needs_answer': needs column(s) ['answer'], which task.train_source lacks; "
        "its columns: ['id', 'topic']"
    )


def test_probe_catches_a_wrong_return_before_training(cwd, custom_task):
    mod = module(cwd, REWARDS)
    with pytest.raises(TaskInputError, match=r"returned 1 values for 2 completions"):
        custom_task(f"task.rewards=[{mod}:too_short]").build(None, seed=0)
    custom_task(f"task.rewards=[{mod}:too_short]", "task.probe_rows=0").build(None, seed=0)  # off


def test_chat_prompts_and_chat_messages_pass_through(cwd, custom_task):
    mod = module(cwd, REWARDS)
    data = cwd / "chat.jsonl"
    rows = [
        {"prompt": [{"role": "system", "content": "s"}, {"role": "user", "content": f"u{i}"}]}
        for i in range(5)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    built = custom_task(f"task.rewards=[{mod}:has_digit]", data=data).build(None, seed=0)
    assert built.train_dataset[0]["prompt"][0] == {"role": "system", "content": "s"}


# ------------------------------------------------------------------------------------ evaluation
def test_evaluate_through_the_generic_rewards_eval_plus_custom_functions(cwd, custom_task):
    mod = module(cwd, REWARDS)
    task = custom_task(
        f"task.rewards=[{{path:{mod}.has_digit,binary:true}},{{path:{mod}.length,high:10}}]",
        f"task.eval_functions=[{{path:{mod}.length,name:chars}}]",
    )
    data = task.build(None, seed=0)
    n = len(data.eval_dataset)
    gens = [["a1", "bbbb"]] * n
    result = task.evaluate(data.eval_dataset, gens, None)
    assert result.metrics["rewards/has_digit"]["value"] == 0.5
    assert result.metrics["rewards/length"]["value"] == 3.0
    assert result.metrics["rewards/all_constraints"]["value"] == 0.5
    assert result.metrics["rewards/bottleneck"]["channel"] == "length"  # 3/10 < 0.5
    assert result.metrics["custom/chars"] == {"value": 3.0, "stderr": 0.0, "n": n}
    assert result.columns["custom/chars"] == "custom/chars" and result.primary == "rewards/all_constraints"
    assert (
        result.examples[0]["custom/chars"] == 3.0 and result.examples[0]["id"] == data.eval_dataset[0]["id"]
    )


# ------------------------------------------------------------------------------ the entry point
@pytest.mark.parametrize(
    "rewards, expected",
    [
        (
            "[no_such_module_xyz:f]",
            "rvpo-train: import path 'no_such_module_xyz:f': no module 'no_such_module_xyz'",
        ),
        ("[{mod}:needs_answer]", "rvpo-train: reward '{mod}:needs_answer': needs column(s) ['answer']"),
    ],
)
def test_rvpo_train_prints_one_line(cwd, compose_cfg, rewards, expected, capsys):
    from rvpo_repro.cli import one_line_errors
    from rvpo_repro.run.job import train_and_evaluate

    mod = module(cwd, REWARDS)
    cfg = compose_cfg("task=custom", f"task.train_source={EXAMPLE_DATA}", f"task.rewards={rewards.format(mod=mod)}",
                      "logger=disabled", root=cwd)  # fmt: skip
    with pytest.raises(SystemExit) as e:
        one_line_errors(train_and_evaluate, "rvpo-train")(cfg)
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("rvpo-train:")]
    assert e.value.code == 2 and len(ours) == 1 and ours[0].startswith(expected.format(mod=mod))


# ------------------------------------------------------------------------------------- examples/
def test_example_rewards_conflict():
    sys.path.insert(0, str(REPO))
    try:
        from examples import rewards as ex
    finally:
        sys.path.remove(str(REPO))
    texts = chat("I saw 3 cats", "I saw cats")
    assert ex.mentions_number(None, texts) == [1.0, 0.0]
    letters = ex.only_letters(None, texts)
    assert letters[0] < letters[1] == 1.0  # the digit that meets one reward costs the other


def test_example_experiment_file_composes_and_resolves(monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(sys, "path", list(sys.path))
    cfg = compose([f"hydra.searchpath=[file://{REPO / 'examples' / 'conf'}]", "experiment=my_task"])
    prepare_config(cfg)
    assert cfg.experiment_name == "my_task" and cfg.task.name == "custom"
    assert set(cfg.task.code_hashes) == {
        "examples.rewards:mentions_number", "examples.rewards:only_letters", "examples.rewards:answer_length"
    }  # fmt: skip


def test_empty_files_and_columns_of_mixed_kinds_are_one_line_naming_source_row_and_column(cwd, custom_task):
    from rvpo_repro.tasks.custom.data import check_columns_agree, to_dataset

    mod = module(cwd, REWARDS)
    reward = f"task.rewards=[{mod}:has_digit]"
    (cwd / "empty.jsonl").write_text("\n")
    with pytest.raises(TaskInputError) as e:
        custom_task(reward, data=cwd / "empty.jsonl").build(None, seed=0)
    assert str(e.value) == (
        f"task.train_source='{cwd / 'empty.jsonl'}': the file is empty; expected JSON rows (one object a line, "
        "or a list of objects)"
    )
    mixed = cwd / "mixed.jsonl"
    mixed.write_text(
        "".join(
            json.dumps({"id": f"r{i}", "prompt": "p", "tags": ["a"] if i == 3 else "b"}) + "\n"
            for i in range(6)
        )
    )
    with pytest.raises(TaskInputError) as e:
        custom_task(reward, data=mixed).build(None, seed=0)
    assert str(e.value) == (
        f"task.train_source='{mixed}': column 'tags' is list in row 3 (id 'r3') but text in row 0; one kind per "
        "column (write every value of it the same way)"
    )
    rows = [{"id": "a", "prompt": [], "n": 1}, {"id": "b", "prompt": [], "n": 2.5}, {"id": "c", "prompt": []}]
    check_columns_agree(rows[:2], "src")  # ints and floats are one kind
    with pytest.raises(TaskInputError, match=r"^src: row 2 \(id 'c'\) has no column 'n', which row 0 has$"):
        to_dataset(rows, "src")
    assert to_dataset([{"id": "a", "n": None}, {"id": "b", "n": 3}], "src").num_rows == 2  # nulls are fine
