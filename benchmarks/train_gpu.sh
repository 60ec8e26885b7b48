#!/usr/bin/env bash
# Train the three nets on the lent GPU machine (issue 9): one command, run from the repository root there.
# It has torch but not kornia/dropblock and no network: the wheels and the data travel in $CARRY
# (made here by `make device-pack`: ../shared/device copied into .device/, which git ignores).
# Order: CUDA smoke tests (bounded), the three nets (each packed into $OUT as soon as it is done),
# then the torch.compile check (bounded). Results go to $OUT (the device tool's return folder).
set -uo pipefail
CARRY=${CARRY:-.device}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if ! python3 -c "import dropblock, kornia" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$CARRY"/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1 CIFARLENS_CACHE=/tmp/cifarlens_cache
DATA=${DATA:-/tmp/cifar10}
[ -d "$DATA/test" ] || tar xJf "$CARRY"/cifar10-jpeg.tar.xz -C "$(dirname "$DATA")" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout "${TEST_TIMEOUT:-90}" python3 -m pytest -q -p no:cacheprovider tests/training/test_cuda.py \
    >"$OUT/cuda_tests.log" 2>&1; echo "CUDA tests: exit $? (log in cuda_tests.log)"; tail -3 "$OUT/cuda_tests.log"
python3 -m benchmarks.train_gpu --data-dir "$DATA" --out "$OUT" "$@"; rc=$?
if [ "${COMPILE_TIMEOUT:-100}" -gt 0 ]; then
    timeout "${COMPILE_TIMEOUT:-100}" python3 -m benchmarks.compile_check --out "$OUT" || echo "compile check: exit $?"
fi
exit $rc
