#!/usr/bin/env bash
# Real null corpus, CPU part: sweeps of the collector on this machine's CPU, one
# after another (never two at once). Output: runs/corpus-cpu/*.nc (+ journals, logs).
# Usage: bash benchmarks/corpus/collect_cpu.sh [OUTDIR] [loaded|idle|quick|quick-p2]
# loaded (default): the first corpus, collected while other jobs ran; idle: three sweeps on the otherwise
# idle machine (start nothing else while they run), the corpus's quiet files; quick: 32 small sweeps of the
# tiny preset as the test suite runs them (6 budgets, 2 trials, default protocol; the run order's seed is
# the round's number), every other round with a busy loop on one of the two cores (start nothing else
# while they run).
set -u
OUTDIR=${1:-runs/corpus-cpu}
MODE=${2:-loaded}
PY=${PYTHON:-python}
mkdir -p "$OUTDIR"
M="distilgpt2 gpt2 opt-125m"

sweep() {  # name, then collector run flags
  local name=$1; shift
  [ -e "$OUTDIR/$name.nc" ] && return   # already collected
  $PY -m collector run --devices cpu --quiet --isolation none --warmup 1 --memory endpoints \
    -o "$OUTDIR/$name.nc" --force "$@" >>"$OUTDIR/$name.log" 2>&1
  echo "exit $?" >>"$OUTDIR/$name.log"
}

if [ "$MODE" = quick ] || [ "$MODE" = quick-p2 ]; then
  # quick-p2: the same 32 sweeps with --processes 2 (each cell's two trials in two fresh processes), for the
  # replication check across processes (issue 14)
  procs=1
  if [ "$MODE" = quick-p2 ]; then procs=2; fi
  for i in $(seq -w 1 16); do
    load=idle
    if [ $((10#$i % 2)) = 0 ]; then load=loaded; fi
    for t in ends events; do
      name=cpu-quick-$load-$t-$i
      [ -e "$OUTDIR/$name.nc" ] && continue
      # the competitor outlives the sweep (about 11 s here) and then stops by itself
      if [ $load = loaded ]; then ( timeout 14 $PY -c "while True: pass" & ); fi
      $PY -m collector run --models tiny-gpt2 --devices cpu --budgets 4:24:4 --trials 2 --timing $t --quiet \
        --processes $procs --seed $((10#$i)) -o "$OUTDIR/$name.nc" >>"$OUTDIR/$name.log" 2>&1
      echo "exit $?" >>"$OUTDIR/$name.log"
    done
  done
  exit 0
fi

if [ "$MODE" = idle ]; then
  sweep cpu-idle-loop-ends-t3-on       --engine loop     --timing ends --trials 3 --cache on  --models distilgpt2 opt-125m --prompt-lens 32 --budgets 16:256:16 --seed 41
  sweep cpu-idle-generate-ends-t5-on   --engine generate --timing ends --trials 5 --cache on  --models gpt2 --prompt-lens 32 --budgets 16:256:16 --seed 42
  sweep cpu-idle-loop-step-t3-off      --engine loop     --timing step --trials 3 --cache off --models distilgpt2 --prompt-lens 16 --budgets 8:128:8 --seed 43
  exit 0
fi

# Sized for a shared 2-core machine with other jobs running (each sweep a few minutes). The first was
# stopped after 68 of its 144 runs (SIGTERM: the collector wrote what it had, random order, so the missing
# runs are spread over the cells).
sweep cpu-loop-ends-t3-on      --engine loop     --timing ends --trials 3 --cache on   --models $M --prompt-lens 16 --budgets 16:256:16 --seed 21
sweep cpu-generate-ends-t2-off --engine generate --timing ends --trials 2 --cache off  --models $M --prompt-lens 16 --budgets 4:32:4 --seed 25
sweep cpu-loop-step-t5-both    --engine loop     --timing step --trials 5 --cache both --models distilgpt2 --prompt-lens 16 --budgets 4:32:4 --seed 24
sweep cpu-loop-ends-t3-sequential --engine loop --timing ends --trials 3 --cache both --models distilgpt2 --prompt-lens 16 --budgets 4:40:4 --order sequential --seed 26
sweep cpu-generate-ends-t2-on  --engine generate --timing ends --trials 2 --cache on   --models $M --prompt-lens 16 --budgets 16:128:16 --seed 22
