"""`custom`: your own data and reward functions, configured from YAML or the command line.

Modules: `task` (the registered task, its config schema and evaluation), `data` (reading a hub id
or a local file or directory into prompt rows), `user_code` (resolving a user's functions by import
path, checking their signatures and what they return, hashing their source).
"""

from rvpo_repro.tasks.custom.task import CustomTask, CustomTaskConfig

__all__ = ["CustomTask", "CustomTaskConfig"]
