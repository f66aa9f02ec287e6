#!/usr/bin/env bash
# One sweep grid measured on one GPU in the sweep's own process ("local") and through a dask.distributed
# scheduler with two workers ("cluster"), in the order local, cluster, cluster, local (paired: the host has
# slow episodes). Issue 14: wall time of each and whether the curves differ (python -m analysis compare).
# With one GPU the two workers share it (each offers cuda=1, so two runs may overlap on the card); with
# two GPUs each worker gets its own (CUDA_VISIBLE_DEVICES). Output: OUTDIR/{local,cluster}-{1,2}.nc,
# OUTDIR/times.txt. Usage: bash benchmarks/corpus/cluster_gpu.sh [OUTDIR] [DEVICE] [FLAGS...]
set -u
OUTDIR=${1:-runs/cluster-gpu}
DEVICE=${2:-cuda}
shift 2 2>/dev/null || true
GRID=${*:-"--models gpt2 --cache on --budgets 16:256:16 --trials 2 --engine loop --timing ends --warmup 2"}
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR"
export PYTHONPATH=${PYTHONPATH:-}:$PWD
NGPU=$(nvidia-smi -L 2>/dev/null | wc -l)
$PY -m distributed.cli.dask_scheduler --port 8786 --no-dashboard >"$OUTDIR/scheduler.log" 2>&1 &
SCHED=$!
sleep 5
for w in 0 1; do
  gpu=$w; if [ "$NGPU" -lt 2 ]; then gpu=0; fi
  CUDA_VISIBLE_DEVICES=$gpu $PY -m distributed.cli.dask_worker tcp://127.0.0.1:8786 --nthreads 1 --nworkers 1 \
    --resources "$DEVICE=1" --no-dashboard >"$OUTDIR/worker$w.log" 2>&1 &
done
sleep 8
echo "gpus $NGPU" >"$OUTDIR/times.txt"
one() {  # name, then extra flags
  local name=$1; shift
  local t0=$SECONDS
  $PY -m collector run --devices "$DEVICE" $GRID --seed 7 --quiet --force -o "$OUTDIR/$name.nc" "$@" \
    >"$OUTDIR/$name.log" 2>&1
  echo "$name exit $? wall $((SECONDS - t0)) s" >>"$OUTDIR/times.txt"
}
one local-1
one cluster-1 --scheduler tcp://127.0.0.1:8786
one cluster-2 --scheduler tcp://127.0.0.1:8786
one local-2
kill $SCHED 2>/dev/null
pkill -f distributed.cli.dask_worker 2>/dev/null
cat "$OUTDIR/times.txt"
