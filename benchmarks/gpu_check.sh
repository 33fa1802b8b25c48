#!/usr/bin/env bash
# One check of the Kronos core on a CUDA machine (issue 13), in at most 6.5 minutes:
#   1. the core tests on CUDA: golden vectors, whole-bar graphs vs eager, concurrent captures,
#      the capture-failure fallback (KRONOS_TEST_DEVICE=cuda pytest tests/test_model.py
#      tests/test_predictor.py);
#   2. speed against the reference in one process: Kronos-small 400/30/1 (target <= 25 ms) and
#      400/120/32 (<= 150 ms), Kronos-base 400/120/32 (<= 0.4 s), float32;
#   3. bfloat16/float16 against float32: token agreement over the golden windows, and speed;
#   4. cross-request batching without HTTP: 8 forecasts of 60 bars x 8 samples alone and in batches
#      of 2, 4 and 8, seconds per forecast and whether each batched forecast equals its lone one.
# Every step has a time limit; its output goes to $OUT/<step>.txt (default
# benchmarks/results/gpu-<time>/), exit codes to $OUT/summary.txt.
#
#   OUT=/some/folder benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"

# The first Python whose torch sees a GPU (a CPU-only venv may sit in .venv).
PY=""
for candidate in "${PYTHON:-}" python3 python .venv/bin/python; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
        PY="$candidate"
        break
    fi
done
if [ -z "$PY" ]; then
    echo "no Python with a CUDA-enabled torch that sees a GPU" | tee "$OUT/summary.txt"
    exit 1
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    "$PY" -c "import torch; print('python', __import__('sys').version.split()[0], '| torch', torch.__version__, '|', torch.cuda.get_device_name(0))"
    for module in numpy pandas einops safetensors huggingface_hub pytest flask; do
        "$PY" -c "import $module" 2>/dev/null || echo "missing module: $module"
    done
} 2>&1 | tee "$OUT/machine.txt"

# tests/conftest.py imports the Flask app; without Flask the core tests run without it.
PYTEST_ARGS=(-q -rs -p no:cacheprovider)
"$PY" -c "import app" 2>/dev/null || PYTEST_ARGS+=(--noconftest)

step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"
    local code=${PIPESTATUS[0]}
    echo "$name: exit $code after $((SECONDS - start)) s" | tee -a "$OUT/summary.txt"
}

step tests 110 env KRONOS_TEST_DEVICE=cuda "$PY" -m pytest "${PYTEST_ARGS[@]}" \
    tests/test_model.py tests/test_predictor.py
step speed-small 80 "$PY" -m benchmarks.predictor_speed --device cuda --model small \
    --cases fits:1 slides:32 --repeats 5 --baseline-repeats 3 --baseline-budget-s 15
step speed-base 80 "$PY" -m benchmarks.predictor_speed --device cuda --model base \
    --cases slides:32 --repeats 5 --baseline-repeats 2 --baseline-budget-s 20
step dtypes 80 "$PY" -m benchmarks.dtype_compare --device cuda --repeats 3
step batching 40 "$PY" -m benchmarks.batching --in-process --device cuda --rounds 2
echo "== results in $OUT"
cat "$OUT/summary.txt"
