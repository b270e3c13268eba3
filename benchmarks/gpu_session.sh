#!/usr/bin/env bash
# One device command for a session that is lent a GPU: the CUDA tests, then benchmarks/bench_gpu.py,
# in about four minutes all told, writing JSON lines to $OUT as it goes (a run cut short keeps every
# line it reached):
#   $OUT/gpu_session.jsonl  one line per step: environment, wheels, cuda_tests, bench, done
#   $OUT/bench_gpu.jsonl    the bench's own lines (phases, figures, summary)
#   $OUT/cuda_tests.log, $OUT/cuda_tests.xml, $OUT/bench.log, $OUT/wheels.log
# ($OUT defaults to /tmp/gpu-session-out where it is not set.)
#
# On the device machine (repo root; carry .whl, made here as benchmarks/gpu_wheels.txt says):
#   bash benchmarks/gpu_session.sh                 # run with a timeout_s of 300: room for one rerun
# Here, on a CPU, the same steps in a short mode (CUDA tests skip, the bench runs --tiny):
#   bash benchmarks/gpu_session.sh --cpu-smoke
#
# GPU_SESSION_BUDGET (seconds, default 230) bounds the whole script; the bench gets what the tests
# leave, less a margin. Only the wheels whose distribution the machine lacks are installed.
# GPU_SESSION_TESTS=0 or GPU_SESSION_BENCH=0 leaves that step out (a rerun of the other alone).
set -u

SMOKE=0
[ "${1:-}" = "--cpu-smoke" ] && SMOKE=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PYTHON:-python3}
[ "$SMOKE" = 1 ] && [ -x .venv/bin/python ] && PY=${PYTHON:-.venv/bin/python}
BUDGET=${GPU_SESSION_BUDGET:-230}
[ "$SMOKE" = 1 ] && BUDGET=${GPU_SESSION_BUDGET:-200}
START=$(date +%s)
OUT=${OUT:-/tmp/gpu-session-out}
mkdir -p "$OUT"
SITE=/tmp/gpu-session-site
export PYTHONPATH="$SITE:$ROOT/pipeline${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

elapsed() { echo $(($(date +%s) - START)); }

# emit STEP [KEY=VALUE ...]: one JSON line (values parsed as JSON where they are, else strings).
emit() {
  "$PY" - "$OUT/gpu_session.jsonl" "$(elapsed)" "$@" <<'PYEOF'
import json, sys, time
path, elapsed, step, *pairs = sys.argv[1:]
row = {"step": step, "elapsed_s": int(elapsed), "time": round(time.time(), 1)}
for pair in pairs:
    key, _, value = pair.partition("=")
    try:
        row[key] = json.loads(value)
    except ValueError:
        row[key] = value
line = json.dumps(row, sort_keys=True)
with open(path, "a", encoding="utf-8") as f:
    f.write(line + "\n")
print(line, flush=True)
PYEOF
}

# -- environment ------------------------------------------------------------------------------------
GPU=$(nvidia-smi -L 2>/dev/null | head -1)
emit environment smoke="$SMOKE" budget_s="$BUDGET" gpu="${GPU:-none}" python="$("$PY" -V 2>&1)" \
  torch="$("$PY" -c 'import torch; print(torch.__version__, torch.cuda.is_available())' 2>&1 | tail -1)" \
  dev_shm="$(df -h /dev/shm 2>/dev/null | tail -1 | awk '{print $2" total, "$4" free"}')"

# -- wheels: only the distributions this Python lacks -------------------------------------------------
if ls .whl/*.whl >/dev/null 2>&1; then
  MISSING=$("$PY" - .whl/*.whl <<'PYEOF'
import importlib.metadata as md, os, sys
for wheel in sys.argv[1:]:
    name = os.path.basename(wheel).split("-")[0]
    try:
        md.version(name)
    except md.PackageNotFoundError:
        print(wheel)
PYEOF
)
  if [ -n "$MISSING" ]; then
    # shellcheck disable=SC2086  # one wheel path a word
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
      $MISSING >"$OUT/wheels.log" 2>&1
    emit wheels rc=$? installed="$(echo $MISSING | xargs -n1 basename | tr '\n' ' ')"
  else
    emit wheels installed="" note="every carried distribution is already installed"
  fi
else
  emit wheels note="no .whl/ folder: nothing carried"
fi
"$PY" -c "import open_clip, webdataset, open_clip_train.main, pytest" >>"$OUT/wheels.log" 2>&1
emit imports rc=$? checked="open_clip webdataset open_clip_train.main pytest"

# -- the CUDA tests -------------------------------------------------------------------------------------
run_cuda_tests() {
TESTS="tests/train/test_train_cuda.py tests/eval/test_eval_cuda.py
  tests/eval/test_eval_inference.py::test_cuda_path_decodes_on_the_gpu_and_gives_the_same_accuracies"
timeout -s TERM 90 "$PY" -m pytest -q -p no:cacheprovider -o addopts= $TESTS \
  --junitxml="$OUT/cuda_tests.xml" >"$OUT/cuda_tests.log" 2>&1
RC=$?
SUMMARY=$("$PY" - "$OUT/cuda_tests.xml" <<'PYEOF'
import json, sys
import xml.etree.ElementTree as ET
try:
    suite = ET.parse(sys.argv[1]).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failed = [
        f"{case.get('name')}: {(case.find('failure') if case.find('failure') is not None else case.find('error')).get('message', '')[:300]}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    print(json.dumps({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | {"failed": failed}))
except Exception as e:  # no report: the log says why
    print(json.dumps({"report": f"unreadable: {type(e).__name__}"}))
PYEOF
)
emit cuda_tests rc=$RC result="$SUMMARY" tail="$(tail -c 600 "$OUT/cuda_tests.log" | tr '\n' ' ')"
}
if [ "${GPU_SESSION_TESTS:-1}" = 0 ]; then
  emit cuda_tests skipped="GPU_SESSION_TESTS=0"
else
  run_cuda_tests
fi

# -- the bench, in what is left ------------------------------------------------------------------------
LEFT=$((BUDGET - $(elapsed) - 10))
if [ "${GPU_SESSION_BENCH:-1}" = 0 ]; then
  emit bench skipped="GPU_SESSION_BENCH=0"
elif [ "$LEFT" -lt 60 ]; then
  emit bench skipped="only ${LEFT}s left of ${BUDGET}s"
else
  ARGS=(--out "$OUT" --budget "$LEFT")
  [ "$SMOKE" = 1 ] && ARGS+=(--tiny --work /tmp/gpu-session-bench-tiny)
  # The bench fits its budget itself and kills its children on SIGTERM; the timeout is a backstop.
  timeout -s TERM $((LEFT + 8)) "$PY" benchmarks/bench_gpu.py "${ARGS[@]}" >"$OUT/bench.log" 2>&1
  RC=$?
  emit bench rc=$RC budget_s="$LEFT" \
    summary="$(grep '"phase": "summary"' "$OUT/bench.log" | tail -1)"
fi
emit done total_s="$(elapsed)"
