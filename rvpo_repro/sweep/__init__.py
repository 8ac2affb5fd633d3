"""The sweep tool, `rvpo-sweep` (= `python -m rvpo_repro.sweep`): a paper sweep (sweeps/<name>.yaml)
expanded into its runs, their status and price, and one launch per model size.

- plan: expand a sweep as Hydra's basic sweeper does, compose every run, report status, launch
- cost: wall-clock hours and GPU-hours of one run from its composed config
- twins: the CPU twin of every cell (the cell shrunk in size only), and the few that cover them all
"""
