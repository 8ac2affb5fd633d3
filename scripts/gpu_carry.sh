#!/usr/bin/env bash
# `make gpu-carry`: the wheels scripts/gpu_check.sh needs on a lent GPU machine that has no network
# and already holds torch, transformers and accelerate (requirements/gpu-check.txt), fetched from
# PyPI for CPython 3.12 manylinux x86-64 into $GPU_CARRY/wheels (default .gpu-carry, git-ignored),
# pyarrow's slimmed (scripts/slim_wheel.py); then the one command to run there. A release with no
# wheel (antlr4-python3-runtime 4.9.3) is built here, and must come out pure Python.
# The lent machine takes 64 MiB in all, the working tree included (tracked files and untracked ones
# git does not ignore, as it copies them): the wheels are refused above 64 MiB less the tree's bytes
# less MARGIN, room for the tree to grow between this build and the call.
#   GPU_CARRY_PYTHON=3.11 (the CPU rehearsal's twin for this machine's interpreter)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
CARRY="${GPU_CARRY:-.gpu-carry}"
PYVER="${GPU_CARRY_PYTHON:-3.12}"
PLATFORM="${GPU_CARRY_PLATFORM:-manylinux_2_28_x86_64}"
MIB=1048576
LIMIT_MIB="${GPU_CARRY_LIMIT_MIB:-64}"  # what the lent machine takes, tree included (tests lower it)
MARGIN=$((2 * MIB))
# PyPI alone: a local wheel folder or index of this machine must not stand in for the package index.
export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_CONSTRAINT
rm -rf "$CARRY/wheels" "$CARRY/site-packages"
mkdir -p "$CARRY/wheels"
grep -vE '^[[:space:]]*(#|$)' requirements/gpu-check.txt | while read -r req; do
  if ! "$PY" -m pip download --quiet --no-deps --only-binary=:all: --platform "$PLATFORM" \
      --python-version "$PYVER" --implementation cp -d "$CARRY/wheels" "$req" 2>/dev/null; then
    "$PY" -m pip wheel --quiet --no-deps -w "$CARRY/wheels" "$req"
  fi
done
tag="cp${PYVER/./}"
for w in "$CARRY"/wheels/*.whl; do
  case "$(basename "$w")" in
    *-none-any.whl | *-"$tag"-*) ;;
    *) echo "gpu-carry: $(basename "$w") is not for CPython $PYVER $PLATFORM" >&2; exit 1 ;;
  esac
done
want=$(grep -cvE '^[[:space:]]*(#|$)' requirements/gpu-check.txt)
got=$(ls "$CARRY"/wheels/*.whl | wc -l)
[ "$got" -eq "$want" ] || { echo "gpu-carry: $got wheels for $want requirements" >&2; exit 1; }
"$PY" scripts/slim_wheel.py "$CARRY"/wheels/*.whl
mib() { awk "BEGIN {printf \"%.2f\", $1 / $MIB}"; }
size=$(du -cb "$CARRY"/wheels/*.whl | tail -1 | cut -f1)
list=$(mktemp)
trap 'rm -f "$list"' EXIT
git ls-files -co --exclude-standard -z >"$list" || { echo "gpu-carry: $PWD is not a git working tree" >&2; exit 1; }
# a tracked file deleted in the tree is not copied: stat skips it
tree=$({ xargs -0 -r stat -c %s -- <"$list" 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
limit=$((LIMIT_MIB * MIB - tree - MARGIN))
echo "gpu-carry: $got wheels, $size bytes in $CARRY/wheels"
echo "gpu-carry: tree $tree + wheels $size = $((tree + size)) bytes ($(mib "$tree") + $(mib "$size") = $(mib $((tree + size))) MiB of $LIMIT_MIB, margin $(mib $MARGIN))"
if [ "$size" -gt "$limit" ]; then
  echo "gpu-carry: the wheels exceed the $limit bytes the lent machine's $LIMIT_MIB MiB leave beside the tree and the margin; drop or slim a wheel (requirements/gpu-check.txt, scripts/slim_wheel.py)" >&2
  exit 1
fi
echo "carry $CARRY/wheels with the working tree (.gpu-carry is git-ignored: name it among what the lent machine carries), and run there (from the repository root):"
echo "  bash scripts/gpu_check.sh --out \"\$OUT/gpu_check.json\""
