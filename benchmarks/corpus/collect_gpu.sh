#!/usr/bin/env bash
# Real null corpus, CUDA part: several sweeps of the collector, one GPU per slot
# (slots share GPUs round-robin when there are fewer GPUs than slots). Every
# sweep ends by DEADLINE seconds from the start (SIGTERM: the collector stops
# between runs and writes what it has). Output: runs/corpus-gpu/*.nc (+ journals,
# logs). Usage: bash benchmarks/corpus/collect_gpu.sh [DEADLINE_S] [OUTDIR] [ROUND]
# ROUND 1 (default): the first corpus; ROUND 2: more corpus on slots 1-3 and, on slot 0, the attention x
# cache-implementation sweep of docs/performance.md (gpt2-medium, per-step timing, budgets to 1016).
# ROUND 3: four 10-trial sweeps (cache on and off, both engines), complete within the deadline.
set -u
DEADLINE=${1:-520}
OUTDIR=${2:-runs/corpus-gpu}
ROUND=${3:-1}
PY=${PYTHON:-python3}
mkdir -p "$OUTDIR"
START=$SECONDS
SMALL="distilgpt2 gpt2 opt-125m"
LARGE="gpt2-medium opt-350m bloom-560m"

sweep() {  # name, then collector run flags
  local name=$1; shift
  local left=$((DEADLINE - (SECONDS - START)))
  if [ "$left" -le 20 ]; then echo "skip $name (no time left)" >>"$OUTDIR/$name.log"; return; fi
  timeout -s TERM "$left" $PY -m collector run --devices cuda --quiet --isolation none --order random \
    --warmup 2 --memory endpoints -o "$OUTDIR/$name.nc" --force "$@" >>"$OUTDIR/$name.log" 2>&1
  echo "exit $? after $((SECONDS - START)) s" >>"$OUTDIR/$name.log"
}

slot0() {
  sweep cuda-generate-ends-t2-small --engine generate --timing ends --trials 2 --cache both --models $SMALL --prompt-lens 32 --budgets 16:256:16 --seed 11
  sweep cuda-loop-step-t3-small --engine loop --timing step --trials 3 --cache both --models $SMALL --prompt-lens 32 --budgets 16:256:16 --seed 12
}
slot1() {
  sweep cuda-loop-ends-t3-large --engine loop --timing ends --trials 3 --cache both --models $LARGE --prompt-lens 32 --budgets 16:256:16 --seed 13
}
slot2() {
  sweep cuda-generate-step-t3-small --engine generate --timing step --trials 3 --cache both --models $SMALL --prompt-lens 16 --budgets 2 4 8 16:256:16 --seed 14
  sweep cuda-loop-ends-t2-sequential --engine loop --timing ends --trials 2 --cache both --models distilgpt2 gpt2 --prompt-lens 32 --budgets 16:256:16 --order sequential --seed 15
}
slot3() {
  sweep cuda-generate-ends-t2-large --engine generate --timing ends --trials 2 --cache both --models $LARGE --prompt-lens 32 --budgets 16:256:16 --seed 16
  sweep cuda-loop-events-t5-distilgpt2 --engine loop --timing events --trials 5 --cache both --models distilgpt2 --prompt-lens 64 --budgets 8:512:24 --seed 17
}

if [ "$ROUND" = 2 ]; then
slot0() {
  sweep cuda-cache-impl-attn-gpt2-medium --models gpt2-medium --cache on --cache-impl dynamic static --attn sdpa eager --prompt-lens 8 --budgets 256 512 1016 --trials 3 --timing step --engine loop --seed 11 --timeout 300
}
slot1() {
  sweep cuda-loop-events-t5-distilgpt2 --engine loop --timing events --trials 5 --cache both --models distilgpt2 --prompt-lens 64 --budgets 16:256:16 --seed 17
  sweep cuda-generate-ends-t3-p8 --engine generate --timing ends --trials 3 --cache both --models gpt2 opt-125m --prompt-lens 8 --budgets 8:248:16 --seed 22
}
slot2() {
  sweep cuda-loop-ends-t3-medium --engine loop --timing ends --trials 3 --cache both --models gpt2-medium opt-350m --prompt-lens 32 --budgets 16:256:32 --seed 18
  sweep cuda-generate-step-t5-small --engine generate --timing step --trials 5 --cache on --models distilgpt2 opt-125m --prompt-lens 32 --budgets 16:256:32 --seed 19
}
slot3() {
  sweep cuda-loop-step-t3-small2 --engine loop --timing step --trials 3 --cache both --models $SMALL --prompt-lens 16 --budgets 16:256:32 --seed 20
  sweep cuda-generate-ends-t2-sequential --engine generate --timing ends --trials 2 --cache both --models gpt2 opt-125m --prompt-lens 32 --budgets 16:256:16 --order sequential --seed 21
}
fi

if [ "$ROUND" = 3 ]; then  # ten trials: what more trials buy on the same noisy host (docs/performance.md)
slot0() {
  sweep cuda-loop-ends-t10-on --engine loop --timing ends --trials 10 --cache on --models distilgpt2 opt-125m --prompt-lens 32 --budgets 16:256:16 --seed 31
}
slot1() {
  sweep cuda-generate-ends-t10-on --engine generate --timing ends --trials 10 --cache on --models gpt2 opt-125m --prompt-lens 32 --budgets 16:256:16 --seed 32
}
slot2() {
  sweep cuda-loop-ends-t10-off --engine loop --timing ends --trials 10 --cache off --models distilgpt2 gpt2 --prompt-lens 32 --budgets 16:256:32 --seed 33
}
slot3() {
  sweep cuda-generate-step-t10-both --engine generate --timing step --trials 10 --cache both --models distilgpt2 --prompt-lens 32 --budgets 16:256:32 --seed 34
}
fi

NGPU=$(nvidia-smi -L 2>/dev/null | wc -l); [ "$NGPU" -ge 1 ] || NGPU=1
for g in $(seq 0 $((NGPU - 1))); do
  ( export CUDA_VISIBLE_DEVICES=$g
    for s in 0 1 2 3; do [ $((s % NGPU)) -eq "$g" ] && slot$s; done ) &
done
wait
echo "all slots done after $((SECONDS - START)) s on $NGPU GPU(s)"
