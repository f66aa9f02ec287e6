#!/usr/bin/env bash
# Issue 22 on a GPU: `collector doctor --device cuda`, then `collector diagnose` on a null sweep (must say
# "nothing to diagnose") and on a sweep with a regime planted into the real decode (the test-only fault
# `slow-decode`: each decode-step forward of the budgets in FAULT sleeps as long as it took, i.e. x2), with the
# questions of the CPU case (tests/test_diagnose_cpu.py): refine, prompt_len, process, attn. The planted runs go
# through tests/collector_with_faults.py (a plain `python -m collector` ignores DECODE_REGIMES_FAULTS).
#
# Usage: bash benchmarks/diagnose_gpu.sh [OUTDIR] [DEVICE] [MODEL]
#   env: BUDGETS (16:224:16), FAULT (budget=100..180), TRIALS (3), MAX_MINUTES (diagnose's, 3.5),
#        DEADLINE (seconds from the start after which nothing new starts and a diagnosis in flight is stopped
#        with SIGTERM, which it takes as "stop after the run in flight, keep the journals"; default 300),
#        PLANTED (1; 0: only the doctor and the null case), PYTHON (python3)
# Output in OUTDIR: doctor.{txt,json}; {null,planted}.nc (the sweeps; `diagnose planted.nc --plan` shows the
#   plan from the file anywhere);
#   {null,planted}-diagnosis.{json,txt,nc} (the JSON is the diagnosis as measured; the .txt is the same
#   command run again if a minute is left before DEADLINE: it continues from the journals and prints the
#   tables); *.log (stderr: progress, warnings); times.txt (each step's exit status and wall time).
# Needs the package's dependencies (netCDF4, dask, ruptures, ...) importable and the repository on PYTHONPATH.
set -u
OUTDIR=${1:-runs/diagnose-gpu}
DEVICE=${2:-cuda}
MODEL=${3:-gpt2}
BUDGETS=${BUDGETS:-16:224:16}
FAULT=${FAULT:-budget=100..180}
TRIALS=${TRIALS:-3}
MAX_MINUTES=${MAX_MINUTES:-3.5}
DEADLINE=${DEADLINE:-300}
PY=${PYTHON:-python3}
QUESTIONS="prompt_len process attn"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 COLUMNS=${COLUMNS:-200}
mkdir -p "$OUTDIR"
: >"$OUTDIR/times.txt"
START=$SECONDS
left() { echo $((DEADLINE - (SECONDS - START))); }
step() {  # name, then the command; stdout to OUTDIR/name.out, stderr to OUTDIR/name.log
  local name=$1; shift
  local t0=$SECONDS budget
  budget=$(left)
  if [ "$budget" -le 5 ]; then echo "$name skipped: deadline" | tee -a "$OUTDIR/times.txt"; return; fi
  timeout -s TERM -k 30 "$budget" "$@" >"$OUTDIR/$name.out" 2>"$OUTDIR/$name.log"
  echo "$name exit $? wall $((SECONDS - t0)) s" | tee -a "$OUTDIR/times.txt"
}
GRID=(--models "$MODEL" --devices "$DEVICE" --cache on --prompt-lens 8 --budgets "$BUDGETS" --trials "$TRIALS"
      --seed 0 --quiet --force)

step doctor $PY -m collector doctor --device "$DEVICE" --plain --json "$OUTDIR/doctor.json"
mv "$OUTDIR/doctor.out" "$OUTDIR/doctor.txt"

unset DECODE_REGIMES_FAULTS
step null-run $PY -m collector run "${GRID[@]}" -o "$OUTDIR/null.nc"
step null-diagnosis $PY -m collector diagnose "$OUTDIR/null.nc" -o "$OUTDIR/null-diagnosis.nc" --force \
  --max-minutes "$MAX_MINUTES" --questions $QUESTIONS --json

if [ "${PLANTED:-1}" != 0 ]; then
export DECODE_REGIMES_FAULTS="slow-decode@$FAULT,device=$DEVICE"
F=tests/collector_with_faults.py
step planted-run $PY $F run "${GRID[@]}" -o "$OUTDIR/planted.nc"
step planted-diagnosis $PY $F diagnose "$OUTDIR/planted.nc" -o "$OUTDIR/planted-diagnosis.nc" --force \
  --max-minutes "$MAX_MINUTES" --questions $QUESTIONS --json
# the tables as diagnose prints them: the same command again (no --force) continues from the journals
[ "$(left)" -gt 60 ] && step planted-tables $PY $F diagnose "$OUTDIR/planted.nc" -o "$OUTDIR/planted-diagnosis.nc" \
  --max-minutes "$MAX_MINUTES" --questions $QUESTIONS
unset DECODE_REGIMES_FAULTS
fi
for n in null-diagnosis planted-diagnosis planted-tables; do
  case $n in *-diagnosis) ext=json ;; *) ext=txt ;; esac
  [ -f "$OUTDIR/$n.out" ] && mv "$OUTDIR/$n.out" "$OUTDIR/$n.$ext"
done
mv "$OUTDIR/planted-tables.txt" "$OUTDIR/planted-diagnosis.txt" 2>/dev/null
echo "total wall $((SECONDS - START)) s" | tee -a "$OUTDIR/times.txt"
