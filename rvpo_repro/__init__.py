"""rvpo-repro: reference suite for RVPO (Reward-Variance Policy Optimization).

Data flows one way: config -> task -> trainer -> aggregator -> evaluation -> record -> analysis.
Modules and subpackages, one idea each and one import path per name (no module re-exports
another's; tests/test_layout.py checks it):

    aggregators    rewards (N, K) -> advantages (N,): the registry of methods (GRPO ... RVPO) and
                   the pure tensor functions they share (tensor_ops: z-scores, SoftMin, whitening)
    rewards        reward channels in TRL's calling convention; multi-channel rewards
    trainer        RVPOTrainer: TRL's GRPOTrainer with the aggregator's advantages
    channel_metrics  per-channel metrics of a batch, logged by every trainer integration
    integrations/  the aggregators inside other trainers: verl's advantage estimators
    schemas        dataclass schemas of the Hydra config groups
    config         composition, the config tree, validation before any work
    models         model configs -> weights (hub id, local path, or the offline tiny model)
    generation     sampling from a policy for evaluation (hf, vllm; vLLM on CPU included)
    cli            what the entry points share: the config tree, --help, one-line errors (run_hydra)
    train          `rvpo-train` = `python -m rvpo_repro.train` (thin Hydra main)
    evaluate       `rvpo-eval` = `python -m rvpo_repro.evaluate` (thin Hydra main)
    run/           one run's life: job (build, train, evaluate, seal), record, provenance, lock, resume,
                   ranks and the facts each rank trained under (rank_facts)
    io             atomic writes, JSON Lines, download-once
    tasks/         data sets and reward channels: toy_constraints, rubric (RaR), toolrl, custom, ...
    evals/         held-out evaluations (rewards, HealthBench, GPQA, BFCL), one EvalResult type
    judges/        LLM and rule judges behind one grade() interface, with a verdict cache
    analysis/      the report: load runs -> statistics -> table -> figures, page, W&B Report;
                   the risk ablation
    sweep/         the sweep tool (`rvpo-sweep`): plan (runs, status, launches), cost (GPU-hours)
    progress       progress bars that stay quiet in log files
    callbacks      training callbacks: progress and compact step lines
    tracking       the W&B run of a job
    envcheck       checks the installed torch build
"""

__version__ = "0.1.0"
