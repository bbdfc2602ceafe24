#!/bin/bash
# Issue 13 section 4: three repeated capacity searches (`recsched-loadtest capacity --repeat 3`)
# of the same pod, per config; run on a quiet machine. Writes OUT/<model>-<protocol>.json (the
# load test's own JSON, with `repeats`) and the load average before and after each.
# By default the three searches replay one workload (seed 1, common random numbers across trials:
# the load test's defaults); EXTRA="--vary-seed --fresh-trials" gives the sampling spread as well,
# EXTRA="--trial-s 20" longer trials. ONLY="wnd-binary rmc1-json" runs just those configs.
#   flock /tmp/recsched-bench.lock bash bench/capacity_spread.sh [OUT]
set -u
cd "$(dirname "$0")/.."
out=${1:-/tmp/capacity-spread}; mkdir -p "$out"
run() {  # model batch target_ms protocol
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $1-$4 "* ]]; then return; fi
  local port
  port=$(cd bench && ../.venv/bin/python -c "from harness import free_port; print(free_port())")
  .venv/bin/python -m recsched_pod --model "$1" --workers 2 --batch-size "$2" --port "$port" \
    --pin-workers auto > "$out/pod-$1-$4.log" 2>&1 &
  local pid=$!
  uptime > "$out/$1-$4.uptime"
  .venv/bin/recsched-loadtest capacity --url "http://127.0.0.1:$port" --model "$1" \
    --target-ms "$3" --protocol "$4" --repeat 3 --seed 1 ${EXTRA:-} --json --quiet --ready-timeout-s 120 \
    > "$out/$1-$4.json" 2> "$out/$1-$4.err"
  uptime >> "$out/$1-$4.uptime"
  kill "$pid"; wait "$pid" 2>/dev/null
}
# The targets of bench/real_capacity.py's run (1x the calibrated 1024-item time).
run rmc1 1024 88.9 binary
run wnd 1024 228.6 binary
run rmc1 1024 88.9 json
