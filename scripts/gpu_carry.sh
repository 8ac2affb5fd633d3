#!/usr/bin/env bash
# `make gpu-carry`: the wheels scripts/gpu_check.sh needs on a lent GPU machine that has no network
# and already holds torch, transformers and accelerate (requirements/gpu-check.txt), fetched from
# PyPI for CPython 3.12 manylinux x86-64 into $GPU_CARRY/wheels (default .gpu-carry, git-ignored),
# refused above 64 MiB together; then the one command to run there. A release with no wheel
# (antlr4-python3-runtime 4.9.3) is built here, and must come out pure Python.
#   GPU_CARRY_PYTHON=3.11 (the CPU rehearsal's twin for this machine's interpreter)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
CARRY="${GPU_CARRY:-.gpu-carry}"
PYVER="${GPU_CARRY_PYTHON:-3.12}"
PLATFORM="${GPU_CARRY_PLATFORM:-manylinux_2_28_x86_64}"
LIMIT=$((64 * 1024 * 1024))
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
size=$(du -cb "$CARRY"/wheels/*.whl | tail -1 | cut -f1)
echo "gpu-carry: $got wheels, $size bytes ($(awk "BEGIN {printf \"%.1f\", $size / 1048576}") MiB of 64) in $CARRY/wheels"
if [ "$size" -gt "$LIMIT" ]; then
  echo "gpu-carry: over the 64 MiB a lent machine takes; drop or downgrade a wheel in requirements/gpu-check.txt" >&2
  exit 1
fi
echo "carry $CARRY with the working tree, and run there (from the repository root):"
echo "  bash scripts/gpu_check.sh --out \"\$OUT/gpu_check.json\""
