"""One run's life, a module per phase in the order `job` calls them: `plan` (validate, size, fix the
run's identity), `ranks` and `lock` (one decision per job, one writer per run directory), `task`,
`training` (with `resume`, `verdicts`; publishing through `checkpoints`), `evaluation` (with
`checkpoint_eval`, `generation_process`) and `record` (the sealed result.json, its examples);
`provenance` (versions, git state, secret redaction) and `errors` (how a run ends unsealed)."""
