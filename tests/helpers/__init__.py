"""What several test files (and benchmarks) share that is not a fixture: the BFCL data fixture in
its real schema, a scripted OpenAI-compatible judge server, a reader of W&B's offline run file,
the toy_smoke run the tests start, and a loader of scripts/*.py.
Imported as `helpers.<module>` (pytest puts tests/ on sys.path)."""
