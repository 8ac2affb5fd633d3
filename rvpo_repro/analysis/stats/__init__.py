"""Statistics, one module per kind of question:

- paired: do two runs differ on the same examples? (paired bootstrap, permutation, Wilcoxon, t)
- seeds: do two methods differ across their seeds? (Welch, Mann-Whitney, seed permutation,
  hierarchical bootstrap of seeds then examples)
- intervals: how good is each method across runs and tasks? (mean, IQM, stratified-bootstrap CIs,
  probability of improvement, performance profiles; the benchmark leaderboard)
- table_rule: which CI and test does each row of a results table get, and Holm over the table
- base: what the tests share (TestResult, p-value conventions, seeded draws, resampling in chunks)
"""
