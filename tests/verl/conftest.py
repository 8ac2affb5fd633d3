"""verl's own code on CPU: the suite's estimators through verl's `compute_advantage`, the example
recipe against verl's config schema. In .cache/verl-venv only (`make test-verl`).

Every test here is marked `verl` and is collected only under `-m verl` (tests/conftest.py); a
missing verl fails the session rather than skipping it, since a skip would hide that nothing ran.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.verl)


@pytest.fixture(scope="session", autouse=True)
def verl_installed():
    if importlib.util.find_spec("verl") is None:
        pytest.fail("tests/verl needs verl: make verl-venv, then make test-verl")


@pytest.fixture(scope="session")
def installed_names() -> dict[str, str]:
    """{verl estimator name: suite aggregator name}, after installing the suite's estimators."""
    from rvpo_repro.integrations.verl import install

    return install()
