"""rvpo-repro: reference suite for RVPO (Reward-Variance Policy Optimization).

Subpackages and modules, one concept each:
    aggregators  rewards (N, K) -> advantages (N,)
    models       model configs -> weights (hub id, local path, or the offline tiny model)
    config       Hydra structured-config schemas
"""

__version__ = "0.1.0"
