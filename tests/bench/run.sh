#!/usr/bin/env bash
# Whole-system benchmarks of issue 7 (docs/performance.md): the hub against the raw broker,
# capacity, drain after an outage, storage; prints every figure in one table and exits 1 when a
# figure misses its target. Builds its own Release tree (build-bench), starts its own Mosquitto
# brokers and hubs on free loopback ports, and stops everything it started on exit.
#
#   tests/bench/run.sh            full run (about 35 minutes on the quiet 2-core reference machine)
#   tests/bench/run.sh --quick    scaled down (about 11 minutes); targets are checked the same way
#   options: --skip-build, --profile (perf record of the hub during the batched ingest, report in
#            build-bench/hub-profile.txt), --hub-bin F (run hub binary F, another build's,
#            for a before/after; everything else comes from build-bench), --setup-bin F
#            (bench_setup of that build, which writes the hub's database, when its schema
#            version differs from build-bench's),
#            --only LIST (comma-separated of: ingest,capacity,drain,storage,footprint)
#   environment: CAPACITY_STEPS, CAPACITY_PERIOD_MS, CAPACITY_DEVICES_PER_CONNECTION,
#            CAPACITY_RAMP_S, CAPACITY_PIN=1 (capacity: broker and hub on CPU 0, generator on
#            CPU 1), CAPACITY_ARCHIVE=1 (capacity: each step's store also holds the settled
#            events a fleet of that size gives the archive every 10 minutes, so that the hub's
#            first archive pass runs beside the fleet; CAPACITY_ARCHIVE_CACHE=DIR keeps the
#            filled store there for the next run: filling it takes 5 minutes at 100,000),
#            DRAIN_WINDOW (drain), KEEP_WORK=1 (keep every report, log and hub's /metrics)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD="$ROOT/build-bench"
QUICK=0
SKIP_BUILD=0
PROFILE=0
HUB_BIN=""
SETUP_BIN=""
ONLY="ingest,capacity,drain,storage,footprint"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --skip-build) SKIP_BUILD=1 ;;
    --profile) PROFILE=1 ;;
    --only) ONLY="$2"; shift ;;
    --hub-bin) HUB_BIN="$2"; shift ;;
    --setup-bin) SETUP_BIN="$2"; shift ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
wants() { [[ ",$ONLY," == *",$1,"* ]]; }

# Capacity's steps (devices at a 10 s heartbeat), smallest first, may be chosen:
#   CAPACITY_STEPS="40000 60000" run.sh --only capacity
STEPS_FROM_ENV=${CAPACITY_STEPS:-}
# Scale. Full: the issue's sizes where one machine allows them (docs/performance.md says which).
if [ "$QUICK" = 1 ]; then
  INGEST_DEVICES=200; SINGLE_BACKLOG=100; BATCH_BACKLOG=1000
  CAPACITY_STEPS="10000 20000 40000"; CAPACITY_SECONDS=30
  DRAIN_AGENTS=200; DRAIN_EVENTS=8640
  STORE_DEVICES=1000; STORE_PREFILL=2000
else
  INGEST_DEVICES=1000; SINGLE_BACKLOG=200; BATCH_BACKLOG=2000
  CAPACITY_STEPS="20000 40000 60000 80000 100000"; CAPACITY_SECONDS=60
  DRAIN_AGENTS=1000; DRAIN_EVENTS=8640
  STORE_DEVICES=1000; STORE_PREFILL=20000
fi
if [ -n "$STEPS_FROM_ENV" ]; then CAPACITY_STEPS=$STEPS_FROM_ENV; fi
# Capacity runs in real time, CAPACITY_DEVICES_PER_CONNECTION devices to an MQTT connection, so
# that the generator's connections do not take the hub's CPU (docs/performance.md, "Capacity").
# CAPACITY_PERIOD_MS=1000 CAPACITY_DEVICES_PER_CONNECTION=1 is the earlier
# time-compressed run: a connection per emulated device, each heartbeating as often as 10 devices.
CAPACITY_PERIOD_MS=${CAPACITY_PERIOD_MS:-10000}
# A device signs its first envelope (a run start) and then one a minute. Devices started within
# one heartbeat period would sign in waves, several times the steady rate of a fleet whose agents
# started at different times: they start one after another over CAPACITY_RAMP_S (a minute), and
# the figures count the CAPACITY_SECONDS after that ramp.
CAPACITY_RAMP_S=${CAPACITY_RAMP_S:-60}
CAPACITY_DEVICES_PER_CONNECTION=${CAPACITY_DEVICES_PER_CONNECTION:-1000}
# CAPACITY_PIN=1 gives the generator a CPU of its own and the broker and hub the other, so that
# a step shows what they carry on one core without the generator in their way.
CAPACITY_PIN=${CAPACITY_PIN:-0}
# CAPACITY_ARCHIVE=1: in steady state the archive moves, every 10 minutes, the 60 heartbeats each
# device sent 48 hours earlier: 6 blocks of 1,000 events per 100 devices. Each step's store gets
# that many devices' blocks (1,001 old events each, the newest stays a row) before the hub starts.
CAPACITY_ARCHIVE=${CAPACITY_ARCHIVE:-0}
GEN_CPU=()
if [ "$CAPACITY_PIN" = 1 ]; then
  [ "$(nproc)" -ge 2 ] ||
    { echo "run.sh: CAPACITY_PIN=1 needs 2 CPUs; this machine has $(nproc)" >&2; exit 2; }
  GEN_CPU=(taskset -c 1)
fi
# Drain: envelopes in flight per agent (the agent's default is 8; docs/performance.md shows why
# 8 x 1,000 agents x 100 events overruns the 15 s ack timeout). DRAIN_WINDOW=2 run.sh ...
DRAIN_WINDOW=${DRAIN_WINDOW:-8}
COMPRESSION=$((10000 / CAPACITY_PERIOD_MS))

WORK=$(mktemp -d /tmp/instrumeter-bench.XXXXXX)
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "run.sh: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Thousands of connections: a socket each in the generator and the broker.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "$SKIP_BUILD" = 0 ]; then
  # The bench programs are test targets; agent_footprint.sh configures the same tree without.
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DINSTRUMETER_BUILD_TESTS=ON \
    >"$WORK/cmake.log" 2>&1 ||
    { cat "$WORK/cmake.log"; exit 1; }
  cmake --build "$BUILD" --target instrumeter-hub instrumeter-loadgen bench_setup storage_bench \
    archive_bench -j2 >"$WORK/build.log" 2>&1 || { tail -50 "$WORK/build.log"; exit 1; }
fi
HUB=${HUB_BIN:-$BUILD/hub/instrumeter-hub}
[ -x "$HUB" ] || { echo "run.sh: hub binary '$HUB' is not an executable file" >&2; exit 2; }
LOADGEN="$BUILD/tests/tools/instrumeter-loadgen"
SETUP=${SETUP_BIN:-$BUILD/tests/bench/bench_setup}
[ -x "$SETUP" ] || { echo "run.sh: setup binary '$SETUP' is not an executable file" >&2; exit 2; }
STORAGE="$BUILD/tests/bench/storage_bench"
ARCHIVE_BENCH="$BUILD/tests/bench/archive_bench"

RESULTS="$WORK/results.tsv"
FAILED=0
# record NAME VALUE TARGET OK(1/0/-)
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
  if [ "$4" = 0 ]; then FAILED=1; fi
  printf '  %-58s %14s   %s\n' "$1" "$2" "$3"
}
json() { /usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
calc() { /usr/bin/python3 -c "print($1)"; }
# cpu_ticks PID: user + system clock ticks the process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# cores TICKS: TICKS as cores used since $t_from (seconds since the epoch).
cores() { calc "round(($1) / $(getconf CLK_TCK) / ($(date +%s.%N) - $t_from), 2)"; }
# hist_p99 METRICS NAME: the upper bound, in ms, of the bucket holding the 99th percentile of a
# Prometheus histogram in the METRICS file ("?" without samples).
hist_p99() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import os, re, sys
buckets = []
for line in open(sys.argv[1]) if os.path.exists(sys.argv[1]) else []:
    m = re.match(sys.argv[2] + r'_bucket\{le="([^"]+)"\} (\d+)', line)
    if m: buckets.append((float(m.group(1)), int(m.group(2))))
total = buckets[-1][1] if buckets else 0
bound = next((le for le, n in buckets if n >= 0.99 * total), None) if total else None
if bound is None: print("?")
elif bound == float("inf"): print(f">{buckets[-2][0] * 1000:g}")
else: print(f"{bound * 1000:g}")
PY
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  local i
  for i in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: nothing listens on port $1" >&2; return 1
}

# start_broker NAME: a Mosquitto on a free loopback port; sets BROKER_PID, BROKER_URL.
start_broker() {
  local dir="$WORK/$1" port
  mkdir -p "$dir"
  port=$(free_port)
  cat >"$dir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
max_connections -1
max_queued_messages 100000
set_tcp_nodelay true
EOF
  mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  wait_port "$port"
  BROKER_URL="tcp://127.0.0.1:$port"
}

# start_hub NAME DEVICES PREFIX [ARCHIVE_DEVICES]: a fresh hub database with DEVICES enrolled
# loadgen devices (and, given ARCHIVE_DEVICES, that many other devices' settled events, a block
# each for the archive), and a hub on BROKER_URL; sets HUB_PID and HUB_HTTP (its /metrics,
# scraped by stop_hub).
start_hub() {
  local dir="$WORK/$1" i
  mkdir -p "$dir"
  HUB_HTTP="127.0.0.1:$(free_port)"
  HUB_DIR="$dir"
  if [ "${4:-0}" -gt 0 ]; then
    local filled="$dir/hub.db"
    if [ -n "${CAPACITY_ARCHIVE_CACHE:-}" ]; then filled="$CAPACITY_ARCHIVE_CACHE/archive-fill-$4.db"; fi
    if [ ! -f "$filled" ]; then
      echo "  filling a store with $4 devices x 1,001 settled events for the archive"
      "$ARCHIVE_BENCH" --db "$filled.tmp" --fill-only --devices "$4" --events-per-device 1001 \
        --events-per-block 1000 >"$dir/archive-fill.json" 2>/dev/null
      mv "$filled.tmp" "$filled"
    fi
    if [ "$filled" != "$dir/hub.db" ]; then cp "$filled" "$dir/hub.db"; fi
  fi
  "$SETUP" --db "$dir/hub.db" --devices "$2" --device-prefix "$3"
  cat >"$dir/hub.toml" <<EOF
log_level = "warn"
[mqtt]
broker = "$BROKER_URL"
client_id = "bench-hub-$1"
[store]
path = "$dir/hub.db"
[http]
listen = "$HUB_HTTP"
EOF
  "$HUB" run --config "$dir/hub.toml" >"$dir/hub.log" 2>&1 &
  HUB_PID=$!
  PIDS+=("$HUB_PID")
  # The hub subscribes with a persistent session; wait until the broker has seen it subscribe.
  for i in $(seq 100); do
    if grep -q "bench-hub-$1" "$WORK/$1-broker/mosquitto.log" 2>/dev/null; then break; fi
    sleep 0.1
  done
  sleep 1
  # A hub that refused to start (say a database of a newer schema) would leave the load
  # generator waiting for acks until its timeout.
  if ! kill -0 "$HUB_PID" 2>/dev/null; then
    echo "run.sh: the hub exited at start; $dir/hub.log:" >&2
    tail -5 "$dir/hub.log" >&2
    exit 1
  fi
}

stop_pid() {
  if kill -0 "$1" 2>/dev/null; then kill -TERM "$1"; wait "$1" 2>/dev/null || true; fi
}

# The hub's own view of the run (commit latency histogram, queue depths) before it stops.
stop_hub() {
  curl -sf "http://$HUB_HTTP/metrics" >"$HUB_DIR/metrics.txt" 2>/dev/null || true
  stop_pid "$HUB_PID"
}

# ingest_pair NAME DEVICES BACKLOG PER_ENVELOPE: raw (a) then hub (b); sets RAW_JSON, HUB_JSON.
ingest_pair() {
  local name=$1 devices=$2 backlog=$3 per=$4 echo_pid perf_pid=""
  local args=(--devices "$devices" --backlog "$backlog" --events-per-envelope "$per" --window 8
    --ack-timeout-ms 15000 --timeout-s 600)
  start_broker "$name-raw-broker"
  "$LOADGEN" --broker "$BROKER_URL" --echo-s 900 >"$WORK/$name-echo.json" 2>&1 &
  echo_pid=$!
  PIDS+=("$echo_pid")
  sleep 1
  RAW_JSON="$WORK/$name-raw.json"
  "$LOADGEN" --broker "$BROKER_URL" --device-prefix "raw-" "${args[@]}" --report-json "$RAW_JSON" \
    >/dev/null || echo "  (raw run incomplete)"
  stop_pid "$echo_pid"
  stop_pid "$BROKER_PID"

  start_broker "$name-hub-broker"
  start_hub "$name-hub" "$devices" "hub-"
  if [ "$PROFILE" = 1 ] && [ "$per" -gt 1 ]; then
    # Release builds have no frame pointers: unwind with DWARF, at a rate the disk can take.
    perf record --call-graph dwarf,16384 -F 300 -o "$WORK/hub.perf.data" -p "$HUB_PID" \
      >/dev/null 2>&1 &
    perf_pid=$!
  fi
  HUB_JSON="$WORK/$name-hub.json"
  "$LOADGEN" --broker "$BROKER_URL" --device-prefix "hub-" "${args[@]}" --report-json "$HUB_JSON" \
    >/dev/null || echo "  (hub run incomplete)"
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    perf report -i "$WORK/hub.perf.data" --stdio --children --sort sym --percent-limit 2 \
      >"$ROOT/build-bench/hub-profile.txt" 2>/dev/null || true
    echo "  profile: build-bench/hub-profile.txt"
  fi
  stop_hub
  stop_pid "$BROKER_PID"
}

echo "instrumeter whole-system benchmarks ($([ "$QUICK" = 1 ] && echo quick || echo full))," \
  "$(nproc) cores, $(date -u +%FT%TZ)"

if wants ingest; then
  echo "== 1. hub against the raw broker ($INGEST_DEVICES devices)"
  ingest_pair single "$INGEST_DEVICES" "$SINGLE_BACKLOG" 1
  raw_single=$(json "$RAW_JSON" events_per_s)
  hub_single=$(json "$HUB_JSON" events_per_s)
  ratio=$(calc "round($hub_single / $raw_single, 2)")
  record "1 event/envelope: (a) raw broker, events/s" "$raw_single" "" -
  record "1 event/envelope: (b) hub stored+acked, events/s" "$hub_single" "" -
  record "1 event/envelope: hub ack latency p50 / p99, ms" \
    "$(json "$HUB_JSON" ack_p50_ms) / $(json "$HUB_JSON" ack_p99_ms)" "" -
  record "1 event/envelope: b/a" "$ratio" ">= 0.5" "$(calc "int($ratio >= 0.5)")"

  ingest_pair batched "$INGEST_DEVICES" "$BATCH_BACKLOG" 100
  raw_batched=$(json "$RAW_JSON" events_per_s)
  hub_batched=$(json "$HUB_JSON" events_per_s)
  ratio=$(calc "round($hub_batched / $raw_single, 2)")
  record "batched 100/envelope: (a) raw broker, events/s" "$raw_batched" "" -
  record "batched 100/envelope: (b) hub stored+acked, events/s" "$hub_batched" "" -
  record "batched: hub ack latency p50 / p99, ms" \
    "$(json "$HUB_JSON" ack_p50_ms) / $(json "$HUB_JSON" ack_p99_ms)" "" -
  record "batched: b/a (same batched messages)" "$(calc "round($hub_batched / $raw_batched, 2)")" "" -
  record "batched hub events/s / raw 1-event events/s" "$ratio" ">= 5" "$(calc "int($ratio >= 5)")"
fi

if wants capacity; then
  echo "== 2. capacity: devices at a 10 s heartbeat, ${CAPACITY_DEVICES_PER_CONNECTION} to a" \
    "connection, each emulated one heartbeating every ${CAPACITY_PERIOD_MS} ms"
  best=0
  no_backlog=0
  p99_missed=0
  for devices in $CAPACITY_STEPS; do
    n=$((devices / COMPRESSION))
    start_broker "capacity-$devices-broker"
    archive_devices=0
    if [ "$CAPACITY_ARCHIVE" = 1 ]; then archive_devices=$((devices * 6 / 100)); fi
    start_hub "capacity-$devices" "$n" "cap-" "$archive_devices"
    hub_started=$(date +%s)
    archived_at=""
    next_poll=$hub_started
    if [ "$CAPACITY_PIN" = 1 ]; then
      taskset -a -p -c 0 "$BROKER_PID" >/dev/null && taskset -a -p -c 0 "$HUB_PID" >/dev/null
    fi
    out="$WORK/capacity-$devices.json"
    "${GEN_CPU[@]}" "$LOADGEN" --broker "$BROKER_URL" --device-prefix "cap-" --devices "$n" \
      --devices-per-connection "$CAPACITY_DEVICES_PER_CONNECTION" \
      --backlog "$(((CAPACITY_RAMP_S + CAPACITY_SECONDS) * 1000 / CAPACITY_PERIOD_MS))" \
      --period-ms "$CAPACITY_PERIOD_MS" --start-spread-s "$CAPACITY_RAMP_S" \
      --warmup-s "$CAPACITY_RAMP_S" \
      --events-per-envelope 100 --window 8 --ack-timeout-ms 15000 \
      --timeout-s "$((CAPACITY_RAMP_S + CAPACITY_SECONDS + 120))" --report-json "$out" >/dev/null &
    gen_pid=$!
    PIDS+=("$gen_pid")
    # CPU of each process from the end of the ramp until the generator's last reading.
    ramp_end=$(($(date +%s) + CAPACITY_RAMP_S))
    t_from=""
    while kill -0 "$gen_pid" 2>/dev/null; do
      if [ -z "$t_from" ] && [ "$(date +%s)" -ge "$ramp_end" ]; then
        hub_from=$(cpu_ticks "$HUB_PID"); broker_from=$(cpu_ticks "$BROKER_PID")
        gen_from=$(cpu_ticks "$gen_pid"); t_from=$(date +%s.%N)
      fi
      gen_ticks=$(cpu_ticks "$gen_pid" 2>/dev/null || echo "${gen_ticks:-0}")
      # The hub counts a pass's events when the pass ends: that moment, every 2 s.
      if [ "$archive_devices" -gt 0 ] && [ -z "$archived_at" ] && [ "$(date +%s)" -ge "$next_poll" ]
      then
        next_poll=$(($(date +%s) + 2))
        if curl -sf "http://$HUB_HTTP/metrics" |
          grep -Eq '^instrumeter_hub_events_archived_total [1-9]'; then
          archived_at=$(($(date +%s) - hub_started))
        fi
      fi
      sleep 0.2
    done
    wait "$gen_pid" || true
    used="?"
    if [ -n "$t_from" ]; then
      used="$(cores "$(cpu_ticks "$HUB_PID") - $hub_from")/$(cores "$(cpu_ticks "$BROKER_PID") - \
$broker_from")/$(cores "$gen_ticks - $gen_from")"
    fi
    stop_hub
    stop_pid "$BROKER_PID"
    p99=$(json "$out" ack_p99_ms)
    tail_ms=$(json "$out" drain_after_last_due_ms)
    complete=$(json "$out" complete)
    kept_up=$(calc "int($tail_ms < 1000 and '$complete' == 'True')")
    record "$devices devices: ack p50/p99 ms, acked after last due ms" \
      "$(json "$out" ack_p50_ms)/$p99, $tail_ms" "p99<200, tail<1000" -
    # Where a p99 comes from: the generator sending late, the hub (its inbound queue, then from
    # taking an envelope to its ack; the commits), or in between (the broker, the generator's
    # inbound side); and whose CPU the step used (the hub's histograms include the ramp).
    record "  p99 ms: generator send lag; hub inbound / ack / commit <=" \
      "$(json "$out" send_lag_p99_ms); $(hist_p99 "$HUB_DIR/metrics.txt" \
instrumeter_hub_inbound_wait_seconds) / $(hist_p99 "$HUB_DIR/metrics.txt" \
instrumeter_hub_ack_latency_seconds) / $(hist_p99 "$HUB_DIR/metrics.txt" \
instrumeter_hub_commit_latency_seconds)" "" -
    record "  cores used after the ramp: hub/broker/generator" "$used" "" -
    if [ "$archive_devices" -gt 0 ]; then
      # The pass began as the hub started, and spreads over half the archive's interval; the
      # figures count from the end of the ramp.
      record "  archive: blocks written of $archive_devices; pass ended, s after hub start" \
        "$(/usr/bin/python3 -c "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(
'SELECT count(*) FROM event_blocks').fetchone()[0])" "$HUB_DIR/hub.db"); \
${archived_at:-"later"}" "ramp ends at ${CAPACITY_RAMP_S}" -
    fi
    # Past the first p99 miss the steps go on while no backlog grows: the throughput limit.
    if [ "$kept_up" = 1 ] && [ "$p99_missed" = 0 ] && [ "$(calc "int($p99 < 200)")" = 1 ]; then
      best=$devices
    else
      p99_missed=1
    fi
    if [ "$kept_up" = 1 ]; then no_backlog=$devices; else break; fi
  done
  record "capacity: devices at 10 s heartbeat (p99 < 200 ms, no backlog)" "$best" ">= 100000" \
    "$(calc "int($best >= 100000)")"
  record "largest step with no growing backlog (p99 aside)" "$no_backlog" "" -
fi

if wants drain; then
  echo "== 3. drain: $DRAIN_AGENTS agents x $DRAIN_EVENTS events reconnect at once"
  start_broker "drain-broker"
  start_hub "drain" "$DRAIN_AGENTS" "drain-"
  out="$WORK/drain.json"
  "$LOADGEN" --broker "$BROKER_URL" --device-prefix "drain-" --devices "$DRAIN_AGENTS" \
    --backlog "$DRAIN_EVENTS" --events-per-envelope 100 --window "$DRAIN_WINDOW" --ack-timeout-ms 15000 \
    --timeout-s 900 --report-json "$out" >/dev/null || true
  stop_hub
  stop_pid "$BROKER_PID"
  drain_s=$(calc "round($(json "$out" drain_ms) / 1000, 1)")
  record "drain (window $DRAIN_WINDOW): events/s; events resent; ack timeouts" \
    "$(json "$out" events_per_s); $(calc "$(json "$out" events_sent) - $(json "$out" events_total)"); $(json "$out" ack_timeouts)" "" -
  record "drain: every outbox empty after, s" "$drain_s" "< 120" \
    "$(calc "int($drain_s < 120 and '$(json "$out" complete)' == 'True')")"
fi

if wants storage; then
  echo "== 5. storage: $STORE_DEVICES devices, $STORE_PREFILL events each pre-filled"
  "$STORAGE" --db "$WORK/storage.db" --devices "$STORE_DEVICES" \
    --prefill-per-device "$STORE_PREFILL" --measure-per-device 50 >"$WORK/storage.jsonl"
  small=$(sed -n 1p "$WORK/storage.jsonl" >"$WORK/small.json"; echo "$WORK/small.json")
  large=$(sed -n 2p "$WORK/storage.jsonl" >"$WORK/large.json"; echo "$WORK/large.json")
  record "store appends/s, interleaved, $(json "$small" table_rows) rows" \
    "$(json "$small" append_rows_per_s)" "" -
  record "store appends/s, interleaved, $(json "$large" table_rows) rows" \
    "$(json "$large" append_rows_per_s)" "" -
  record "store duplicate lookups/s, small / large table" \
    "$(json "$small" lookups_per_s) / $(json "$large" lookups_per_s)" "" -
  record "store pre-fill (device-major) rows/s; file MB" \
    "$(json "$large" prefill_rows_per_s); $(calc "$(json "$large" db_bytes) // 1000000")" "" -
fi

if wants footprint && [ -x "$ROOT/tests/bench/agent_footprint.sh" ]; then
  echo "== 4. agent footprint"
  "$ROOT/tests/bench/agent_footprint.sh" || FAILED=1
fi

echo
echo "figure	value	target	pass" | cat - "$RESULTS" | column -t -s "$(printf '\t')"
if [ "$FAILED" = 1 ]; then
  echo "run.sh: a figure missed its target" >&2
  exit 1
fi
