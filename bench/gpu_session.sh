#!/usr/bin/env bash
# One short session on a CUDA machine: the GPU tests, then the GPU benchmarks, most important first, each stage
# cut off so that the whole stays inside a time budget. Results (JSON) and logs go to OUTDIR.
#
#   bash bench/gpu_session.sh [OUTDIR] [BUDGET_S]      # defaults: bench/results, 540
#   ONLY=build-qwen3,query-service bash bench/gpu_session.sh /tmp/out 200   # some stages only
#
# Stages: the machine (nvidia-smi, versions); the random Qwen3-Embedding-0.6B shape built once into the cache;
# `pytest -m gpu`; bench/gpu_profile.py in bf16 (plain encode vs the engine, overlap, token budgets, share of the
# bf16 peak); the same under torch.profiler (where the host's time goes); bench/query_service.py (a query's vector in-process and served over HTTP, 1/16/64 clients);
# bench/generate.py (the generator's pipeline vs plain encode); bench/gpu_profile.py in fp32. Uses `python3`
# (PYTHON to override) with the project's requirements importable; needs no network (HF_HUB_OFFLINE=1).
set -u
cd "$(dirname "$0")/.."
OUTDIR=${1:-bench/results}
BUDGET=${2:-540}
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/gpu-session-cache}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

stage() {  # stage NAME WANT_S CMD...: runs CMD for at most WANT_S seconds and what is left of the budget
  local name=$1 want=$2; shift 2
  if [[ -n ${ONLY:-} && ",$ONLY," != *",$name,"* ]]; then return; fi
  local left=$((BUDGET - SECONDS - 10))
  local limit=$(( want < left ? want : left ))
  if (( limit < 20 )); then echo "== $name: skipped, ${left}s of the budget left"; return; fi
  echo "== $name (at most ${limit}s, ${SECONDS}s in)"
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@"
  echo "== $name: exit $? after $((SECONDS - t0))s"
}

stage machine 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; \
  $PY -c 'import torch, transformers, sentence_transformers as st; print(torch.__version__, torch.version.cuda, \
  transformers.__version__, st.__version__, torch.cuda.get_device_name(0))'"
stage build-qwen3 120 $PY -c "from console.generation.devmodels import cached_random_qwen3; print(cached_random_qwen3('full'))"
stage pytest-gpu 240 $PY -m pytest -m gpu -q -p no:cacheprovider tests/test_engine.py tests/test_jobs.py
stage profile-bf16 240 $PY bench/gpu_profile.py --dtypes bfloat16 --batch-sizes ${BATCH_SIZES:-16,64,256} --n 2048 \
  --output "$OUTDIR/gpu-profile-cuda.json"
stage profile-trace 90 $PY bench/gpu_profile.py --dtypes bfloat16 --n 1024 --trace "$OUTDIR/gpu-trace-cuda.txt"
stage query-service 120 $PY bench/query_service.py --queries 500 --clients 1,16,64 \
  --output "$OUTDIR/query-service-cuda.json" --server-log "$OUTDIR/serve.log"
stage generate 120 $PY bench/generate.py --qwen3-random full --device cuda --n 2048 --batch-size 64 --repeats 1 \
  --output "$OUTDIR/generate-cuda.json"
stage profile-fp32 120 $PY bench/gpu_profile.py --dtypes float32 --batch-sizes 64 --n 512 --token-budgets 16384 \
  --output "$OUTDIR/gpu-profile-cuda-fp32.json"
echo "== done in ${SECONDS}s"
