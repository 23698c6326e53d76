#!/usr/bin/env bash
# The GPU run (docs/gpu.md): on a machine with one NVIDIA GPU, in one go of under 10 minutes, from a bare
# copy of the working tree (no venv, no artifacts) and PyPI:
#   1. make a venv with kopt and onnxruntime-gpu (for the driver's CUDA major; the CPU wheel removed), and
#      the TensorRT libraries the TensorRT provider links;
#   2. fetch the embedded model and rebuild the fp32 reference (`kopt fetch`, `kopt reference`), then build
#      only fp16 and hybrid (the default recipe's winner, as recipes/default.toml defines both) and the
#      reference and fp16 with a static token length (bind-shapes bucket), one `kopt optimize` each;
#   3. `kopt bench` them on cuda, cuda-heuristic and cuda-default (cudnn_conv_algo_search EXHAUSTIVE,
#      HEURISTIC, DEFAULT; one run each, the variants interleaved), then on tensorrt (one run per
#      variant: an engine build that runs long costs that variant only);
#   4. print the summary table (first-seen RTF is where cuDNN's per-shape search shows).
# Results: STORE/results/gpu-<time>/{cuda,cuda-heuristic,cuda-default,tensorrt-<variant>}.jsonl, kopt result records that `kopt report` and `kopt history` read.
#
#   bash docs/measurements/gpu.sh [options]
#     --check           only check for a CUDA device and a usable onnxruntime-gpu; build and measure nothing
#     --no-install      use --python as it is (no venv, nothing installed)
#     --python PY       interpreter for the venv, or the one to use with --no-install (default: the first
#                       python3.13/3.12/3.11/python3 that is 3.11 or newer)
#     --venv DIR        the venv to make or reuse (default: ${TMPDIR:-/tmp}/kopt-gpu-venv)
#     --store DIR       artifact store (default: artifacts)
#     --budget SECONDS  wall-clock budget of the whole run, install included (default: 540); steps that
#                       would not fit are skipped and said so, the summary is always printed
#     --text ID         bench text id (repeatable; default: short-1 and medium-1)
#     --no-tensorrt     skip the TensorRT libraries and the tensorrt runs
# Exit status: 0 measured (at least one cell ok); 1 a step failed or nothing could be measured;
#   2 usage error; 3 skipped: no CUDA device, or onnxruntime-gpu not usable (nothing built or measured).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SKIPPED=3
START=$(date +%s)
CHECK=0 INSTALL=1 TRT=1 PY="" VENV="${TMPDIR:-/tmp}/kopt-gpu-venv" STORE=artifacts BUDGET=540 TEXTS=()

say() { echo "gpu.sh: $*"; }
die() { say "error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --check) CHECK=1 ;;
    --no-install) INSTALL=0 ;;
    --no-tensorrt) TRT=0 ;;
    --python|--venv|--store|--budget|--text)
      [ $# -ge 2 ] || { say "usage error: $1 needs a value" >&2; exit 2; }
      case "$1" in
        --python) PY=$2 ;; --venv) VENV=$2 ;; --store) STORE=$2 ;; --text) TEXTS+=("$2") ;;
        --budget) [[ $2 =~ ^[0-9]+$ ]] || { say "usage error: --budget takes seconds" >&2; exit 2; }; BUDGET=$2 ;;
      esac
      shift ;;
    -h|--help) usage; exit 0 ;;
    *) say "usage error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#TEXTS[@]} -gt 0 ] || TEXTS=(short-1 medium-1)
DEADLINE=$((START + BUDGET))
left() { echo $((DEADLINE - $(date +%s))); }

find_python() {
  local c
  for c in python3.13 python3.12 python3.11 python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}
if [ -z "$PY" ]; then
  PY=$(find_python) || die "no Python 3.11 or newer found (kopt needs it); pass --python"
fi

# -- 1. the device: before anything is installed or built ---------------------------------------------
if ! command -v nvidia-smi >/dev/null; then
  GPU_WHY="no CUDA device (nvidia-smi not found on PATH)"
elif ! GPUS=$(nvidia-smi -L 2>&1) || ! grep -q '^GPU [0-9]' <<<"$GPUS"; then
  GPU_WHY="no CUDA device (nvidia-smi lists no GPU: $(head -n1 <<<"$GPUS"))"
else
  GPU_WHY=""
  say "device: $(grep -m1 '^GPU [0-9]' <<<"$GPUS")"
fi
if [ -n "$GPU_WHY" ]; then
  say "skipped: $GPU_WHY; nothing built or measured (exit $SKIPPED)"
  if [ "$CHECK" = 1 ] && "$PY" -c 'import onnxruntime' 2>/dev/null; then
    say "onnxruntime of $PY: $("$PY" "$HERE/gpu.py" check)"
  fi
  exit $SKIPPED
fi
CUDA_MAJOR=$(nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9]*' | grep -o '[0-9]*$' | head -n1)
CUDA_MAJOR=${CUDA_MAJOR:-12}

# -- 2. the environment ---------------------------------------------------------------------------
if [ "$INSTALL" = 1 ] && [ "$CHECK" = 0 ]; then
  ORT_SPEC=$("$PY" "$HERE/gpu.py" ort-spec "$CUDA_MAJOR") || die "gpu.py ort-spec failed"
  say "venv $VENV: kopt[embedded,g2p] and $ORT_SPEC (driver CUDA $CUDA_MAJOR)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || die "python -m venv $VENV failed"
  PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)
  "${PIP[@]}" -e "${ROOT}[embedded,g2p]" || die "pip install kopt failed"
  # the CPU wheel and onnxruntime-gpu are one module: remove the first before the second goes in
  "$VENV/bin/python" -m pip uninstall -q -y onnxruntime >/dev/null 2>&1 || true
  "${PIP[@]}" "$ORT_SPEC" || die "pip install $ORT_SPEC failed"
  if [ "$TRT" = 1 ]; then
    if TRT_SPEC=$("$VENV/bin/python" "$HERE/gpu.py" trt-spec); then
      say "TensorRT libraries: $TRT_SPEC"
      "${PIP[@]}" "$TRT_SPEC" || say "warning: pip install $TRT_SPEC failed; tensorrt cells will fail"
    else
      say "warning: no TensorRT provider in this onnxruntime-gpu; tensorrt cells will be skipped"
    fi
  fi
  PY="$VENV/bin/python"
elif [ "$CHECK" = 1 ] && [ -x "$VENV/bin/python" ] && [ "$INSTALL" = 1 ]; then
  PY="$VENV/bin/python"
fi
say "python: $PY ($(( $(date +%s) - START )) s so far)"
LIBS=$("$PY" "$HERE/gpu.py" libpath 2>/dev/null || true)
[ -z "$LIBS" ] || export LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

CHECK_OUT=$("$PY" "$HERE/gpu.py" check 2>&1)
rc=$?
say "$(tail -n1 <<<"$CHECK_OUT")"
if [ $rc -ne 0 ]; then
  say "nothing built or measured (exit $SKIPPED)"
  exit $SKIPPED
fi
[ "$CHECK" = 0 ] || exit 0

# -- 3. the models ----------------------------------------------------------------------------------
case "$STORE" in /*) ;; *) STORE="$PWD/$STORE" ;; esac  # relative to where the script was started
cd "$ROOT" || die "cd $ROOT"
KOPT=("$PY" -m kopt.cli.main --artifacts "$STORE")
RUN="gpu-$(date -u +%Y%m%dT%H%M%SZ)"
RESULTS="$STORE/results/$RUN"
WORK="$STORE/.tmp/$RUN"
mkdir -p "$RESULTS" "$WORK" || die "mkdir $RESULTS"
TEXT_ARGS=()
for t in "${TEXTS[@]}"; do TEXT_ARGS+=(--text "$t"); done
FAILED=()

"${KOPT[@]}" fetch || die "kopt fetch failed"
"${KOPT[@]}" reference || die "kopt reference failed"
VARIANTS=(reference)
RECIPE_ARGS=()
for t in "${TEXTS[@]}"; do RECIPE_ARGS+=(--text "$t"); done
RECIPES=$("$PY" "$HERE/gpu.py" recipes "$WORK/recipes" "${RECIPE_ARGS[@]}") || die "gpu.py recipes failed"
while read -r name recipe; do
  room=$(( $(left) - 300 ))  # keep five minutes for the benches and the summary
  if [ "$room" -le 0 ]; then FAILED+=("$name: not built (out of time budget)"); continue; fi
  say "building $name (at most $room s)"
  if timeout "$room" "${KOPT[@]}" --json optimize --recipe "$recipe" --threads 8 > "$WORK/$name.json"; then
    "$PY" "$HERE/gpu.py" ref "$STORE" "$WORK/$name.json" >/dev/null && VARIANTS+=("$name")
  else
    FAILED+=("$name: build failed or timed out (see kopt optimize --recipe $recipe)")
  fi
done <<<"$RECIPES"
say "variants: ${VARIANTS[*]} ($(( $(date +%s) - START )) s so far)"

# -- 4. the measurements ----------------------------------------------------------------------------
BENCH=(bench --threads 2 --warmup 1 --repeats 3 --ttfa-repeats 3 "${TEXT_ARGS[@]}" --no-scaling --memory-mb 0)
# one run per conv-search preset (every variant interleaved in each, the reference its baseline), so a run
# killed at the budget costs that preset only; node placement is recorded on the first
EXTRA=()
for p in cuda cuda-heuristic cuda-default; do
  room=$(( $(left) - 20 ))
  if [ "$room" -le 60 ]; then FAILED+=("$p bench: not run (out of time budget)"); continue; fi
  say "bench ${VARIANTS[*]} on $p (at most $room s)"
  timeout "$room" "${KOPT[@]}" "${BENCH[@]}" ${EXTRA[@]+"${EXTRA[@]}"} "${VARIANTS[@]}" -p "$p" --timeout 120 \
    --out "$RESULTS/$p.jsonl" || FAILED+=("$p bench: exit $? (124: killed at the time budget)")
  EXTRA=(--no-partition)
done
if [ "$TRT" = 1 ]; then
  for v in "${VARIANTS[@]}"; do
    case "$v" in reference|reference-b*|fp16) ;; *) continue ;; esac  # int8 (hybrid) is not TensorRT's
    room=$(( $(left) - 20 ))
    if [ "$room" -le 40 ]; then FAILED+=("$v on tensorrt: not run (out of time budget)"); continue; fi
    say "bench $v on tensorrt (at most $room s)"
    timeout "$room" "${KOPT[@]}" "${BENCH[@]}" "$v" -p tensorrt --no-partition --timeout "$(( room < 240 ? room : 240 ))" \
      --out "$RESULTS/tensorrt-$v.jsonl" || FAILED+=("$v on tensorrt: exit $? (124: killed at the time budget)")
  done
fi

# -- 5. the summary ---------------------------------------------------------------------------------
echo
say "summary ($(( $(date +%s) - START )) s; RTF = seconds per second of audio, lower is faster; first-seen: each"
say "text's first run in a fresh session, where per-shape tuning is paid)"
"$PY" "$HERE/gpu.py" summary "$RESULTS"
for f in ${FAILED[@]+"${FAILED[@]}"}; do say "  $f"; done
say "results: $RESULTS"
say "report:  ${KOPT[*]} report $RESULTS --out $STORE/report-$RUN"
say "history: ${KOPT[*]} history $STORE/results"
grep -q '"status": "ok"' "$RESULTS"/*.jsonl 2>/dev/null || { say "no cell was measured"; exit 1; }
exit 0
