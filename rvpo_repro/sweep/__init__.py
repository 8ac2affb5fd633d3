"""The sweep tool, `rvpo-sweep` (= `python -m rvpo_repro.sweep`): a paper sweep (sweeps/<name>.yaml)
expanded into its runs, their status and price, and one launch per model size.

- plan: expand a sweep as Hydra's basic sweeper does, compose every run, report status, launch
- cost: wall-clock hours, GPU-hours (the judge's by its roofline) and paid grader dollars of one run
- table: what rvpo-sweep prints (blocks, cost, memory, one row per run)
- twins: the CPU twin of every cell (the cell shrunk in size only), and the few that cover them all
"""
