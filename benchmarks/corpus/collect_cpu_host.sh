#!/usr/bin/env bash
# Real CPU measurements on a many-core host (16 cores): the published CPU dataset
# (one sweep per model, merged afterwards into datasets/cpu-loop-step.nc) and more
# CPU null-corpus sweeps (tests/data/real/cpu-*.nc). Five sweeps run at once, each
# limited to its own threads (OMP_NUM_THREADS), so each sweep shares the host's
# memory bandwidth with four others: a busy machine, and the files say so.
#
# Usage: bash benchmarks/corpus/collect_cpu_host.sh OUTDIR DEADLINE_S
# A sweep still running DEADLINE_S seconds after the start is stopped by SIGTERM
# and writes the runs it has (random order, so the missing runs are spread over
# the cells; `status` says `not_run`). Already-written outputs are skipped.
set -u
OUTDIR=${1:-runs/corpus-cpu-host}
DEADLINE=${2:-1800}
PY=${PYTHON:-python}
START=$(date +%s)
mkdir -p "$OUTDIR"

sweep() {  # threads, name, then collector run flags
  local threads=$1 name=$2; shift 2
  [ -e "$OUTDIR/$name.nc" ] && return
  local left=$(( DEADLINE - ($(date +%s) - START) ))
  [ "$left" -gt 30 ] || return
  OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads timeout -s TERM -k 60 "$left" \
    $PY -m collector run --devices cpu --quiet --isolation none --warmup 1 --memory endpoints \
    --title "CPU null sweep $name ($threads threads, 4 other sweeps running)" \
    -o "$OUTDIR/$name.nc" --force "$@" >>"$OUTDIR/$name.log" 2>&1
  echo "exit $?" >>"$OUTDIR/$name.log"
}

STEP="--engine loop --timing step --trials 3 --cache both --prompt-lens 16 --budgets 16:256:16"
# the published dataset, one model per sweep (4 threads each)
sweep 4 pub-distilgpt2 $STEP --models distilgpt2 --seed 31 &
sweep 4 pub-gpt2 $STEP --models gpt2 --seed 32 &
sweep 4 pub-opt-125m $STEP --models opt-125m --seed 33 &
# corpus sweeps, two chains of two threads
( sweep 2 cpu-generate-ends-t2-on --engine generate --timing ends --trials 2 --cache on \
    --models distilgpt2 gpt2 opt-125m --prompt-lens 16 --budgets 16:256:16 --seed 22
  sweep 2 cpu-loop-ends-t3-sequential --engine loop --timing ends --trials 3 --cache both \
    --models distilgpt2 --prompt-lens 16 --budgets 8:64:8 --order sequential --seed 26 ) &
( sweep 2 cpu-generate-step-t5-on --engine generate --timing step --trials 5 --cache on \
    --models distilgpt2 opt-125m --prompt-lens 32 --budgets 16:256:32 --seed 27
  sweep 2 cpu-loop-ends-t3-off --engine loop --timing ends --trials 3 --cache off \
    --models gpt2 opt-125m --prompt-lens 16 --budgets 8:96:8 --seed 28 ) &
wait
