"""Package list only (everything else is in pyproject.toml).

`conf/` and `sweeps/` live at the top of the repository but ship inside the wheel as
`rvpo_repro/conf` and `rvpo_repro/sweeps`; a package mapped from another directory cannot be found
by `packages.find`, so they are named here.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["rvpo_repro", "rvpo_repro.*"]), "rvpo_repro.conf", "rvpo_repro.sweeps"])
