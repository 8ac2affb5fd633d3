"""Package list only (everything else is in pyproject.toml).

`conf/` lives at the top of the repository but must ship inside the wheel as `rvpo_repro/conf`;
a package mapped from another directory cannot be found by `packages.find`, so it is named here.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["rvpo_repro", "rvpo_repro.*"]), "rvpo_repro.conf"])
