"""Every exception the suite defines survives pickling: joblib and submitit send a failed job's
exception back to the sweep's process, where one that cannot be rebuilt breaks the whole pool."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
from pathlib import Path

import pytest

import rvpo_repro

# Classes whose constructor is not BaseException's (one message): the arguments to build one.
SAMPLE_ARGS = {
    "rvpo_repro.run.lock.RunLockedError": (Path("results/runs/toy/r1"), 4242),
}


def _suite_exceptions() -> list[type[BaseException]]:
    found = {}
    for info in pkgutil.walk_packages(rvpo_repro.__path__, "rvpo_repro."):
        if info.name.endswith(".__main__"):  # runs a command when imported
            continue
        try:
            module = importlib.import_module(info.name)
        except ModuleNotFoundError as exc:  # an optional engine (vLLM, DeepSpeed) not installed here
            if (exc.name or "").startswith("rvpo_repro"):
                raise
            continue
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("rvpo_repro."):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[name] for name in sorted(found)]


EXCEPTIONS = _suite_exceptions()


def test_the_introspection_finds_the_errors_a_job_raises():
    names = {e.__name__ for e in EXCEPTIONS}
    assert {
        "RunLockedError",
        "ConfigError",
        "TaskInputError",
        "RankError",
        "RunFailed",
        "RunInterrupted",
    } <= names


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: c.__qualname__)
def test_every_suite_exception_round_trips_through_pickle(cls):
    name = f"{cls.__module__}.{cls.__qualname__}"
    overridden = cls.__init__ is not BaseException.__init__ and "__init__" in {
        k for c in cls.__mro__ if c.__module__.startswith("rvpo_repro") for k in vars(c)
    }
    if overridden and name not in SAMPLE_ARGS:
        pytest.fail(f"{name} has its own __init__: add its arguments to SAMPLE_ARGS")
    exc = cls(*SAMPLE_ARGS.get(name, ("run r1: one line that explains",)))
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert str(back) == str(exc) and back.args == exc.args
    assert vars(back) == vars(exc)  # attributes such as RunLockedError.pid come back too
