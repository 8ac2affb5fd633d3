"""The suite's aggregators inside other RL trainers; one module per trainer, each importing that
trainer only when used (`rvpo_repro.integrations.verl`: verl's advantage estimators)."""
