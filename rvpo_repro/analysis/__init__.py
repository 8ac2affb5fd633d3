"""Everything after the run record, in one direction: load -> statistics -> table -> render.

- runs: load an experiment's run records (finished, failed, unfinished), group them by config
- labels: `method_label(agg_cfg)`, the one place aggregator labels are rendered
- stats: the statistics, one module per question: paired (across examples), seeds (across seeds),
  intervals (across runs and tasks), table_rule (which CI and test each table row gets)
- paper: the paper's numbers (results/paper_reference.yaml)
- table: the results table and its Markdown / CSV / LaTeX files
- figures, page, wandb_report: PNG figures, the HTML page, W&B table and Report
- leaderboard: the aggregator benchmark (IQM, stratified bootstrap, probability of improvement,
  performance profiles; `make benchmark`)
- report: the `rvpo-report` driver (imported by nothing here)
- ablation: the risk ablation's table and figures (`python -m rvpo_repro.analysis.ablation`)
"""
