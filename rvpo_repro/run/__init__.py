"""One run's life: `job` (build, train, evaluate, seal), `record` (the sealed result.json and its
examples), `provenance` (versions, git state, secret redaction), `lock` (one writer per run
directory) and `resume` (what a resumed run restores beyond TRL's checkpoint)."""
