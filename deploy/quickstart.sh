#!/usr/bin/env bash
# instrumeter quick start: a real Mosquitto broker, the hub with an SQLite database and its ops
# dashboard, and 20 simulated instruments at institutions in five cities, all on this machine,
# loopback only.
#
#   deploy/quickstart.sh             run until Ctrl-C
#   deploy/quickstart.sh --for 60    run 60 s, print one row per instrument as the hub sees it,
#                                    stop everything and exit 0 (1 if an instrument reported nothing)
#
# Installs missing Debian packages (apt), builds into build-quickstart/, and keeps every file of
# the run (configs, databases, logs, ground truth) under run/quickstart/.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

run_for=0
while [ $# -gt 0 ]; do
  case "$1" in
    --for) run_for="${2:?--for needs a number of seconds}"; shift ;;
    --for=*) run_for="${1#--for=}" ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$run_for" =~ ^[0-9]+$ ]] || { echo "quickstart.sh: --for wants whole seconds, got '$run_for'" >&2; exit 2; }

echo "== checking packages"
"$root/deploy/install-deps.sh" build run

build="$root/build-quickstart"
echo "== building (Release) in $build"
build_log="$build.log"
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DINSTRUMETER_BUILD_TESTS=OFF &&
       cmake --build "$build" -j"$(nproc)" --target instrumeter-hub instrumeter-agent; } >"$build_log" 2>&1; then
  tail -30 "$build_log" >&2
  echo "quickstart.sh: the build failed; the whole log is in $build_log" >&2
  exit 1
fi
hub_bin="$build/hub/instrumeter-hub"
agent_bin="$build/agent/instrumeter-agent"

run="$root/run/quickstart"
rm -rf "$run"
mkdir -p "$run"/{broker,hub,agents,logs}

pids=()
cleanup() {
  # A second Ctrl-C must not cut the cleanup short and leave processes behind.
  trap '' INT TERM
  trap - EXIT
  echo
  echo "== stopping"
  # Agents first, so their last events reach the hub; then the hub; then the broker.
  for pid in "${agent_pids[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${agent_pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  echo "stopped everything this script started; files are in $run"
}
agent_pids=()
trap cleanup EXIT
trap 'exit 130' INT TERM

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    port_is_free "$p" && { echo "$p"; return; }
  done
  echo "no free port found" >&2
  return 1
}

# --- broker -------------------------------------------------------------------------------
port=$(pick_port)
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root"
sed -e "s|@PORT@|$port|" -e "s|@DATA_DIR@|$run/broker|" -e "s|@LOG_FILE@|$run/logs/mosquitto.log|" \
  -e "s|@USER_LINE@|$user_line|" "$root/deploy/mosquitto/dev.conf.in" >"$run/broker/mosquitto.conf"
/usr/sbin/mosquitto -c "$run/broker/mosquitto.conf" >>"$run/logs/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do port_is_free "$port" || break; sleep 0.1; done
port_is_free "$port" && { echo "mosquitto did not start; see $run/logs/mosquitto.log" >&2; exit 1; }
broker="tcp://127.0.0.1:$port"

# --- hub ----------------------------------------------------------------------------------
http_port=$(pick_port)
while [ "$http_port" = "$port" ]; do http_port=$(pick_port); done
hub_conf="$run/hub/hub.toml"
cat >"$hub_conf" <<TOML
# quick-start hub: development mode (plain MQTT and HTTP on loopback)
[mqtt]
broker = "$broker"

[store]
path = "$run/hub/hub.db"

[http]
listen = "127.0.0.1:$http_port"
TOML
"$hub_bin" instruments import "$root/deploy/quickstart/instruments.csv" --config "$hub_conf"
"$hub_bin" run --config "$hub_conf" >"$run/logs/hub.log" 2>&1 &
pids+=($!)

# --- agents -------------------------------------------------------------------------------
# Each instrument plays its own day: most a seeded random schedule with their own rhythm, a few
# the scripted lab day. Every agent writes the simulator's ground truth beside its state.
i=0
while IFS=, read -r id _rest; do
  [ "$id" = "instrument_id" ] && continue
  i=$((i + 1))
  dir="$run/agents/$id"
  mkdir -p "$dir/state"
  if [ $((i % 5)) -eq 0 ]; then
    schedule="schedule_file = \"$root/firmware-adapters/simulator/testdata/lab_day.toml\""
  else
    schedule="seed = $((1000 + i))
min_period_ms = $((2000 + (i % 4) * 1000))
max_period_ms = $((8000 + (i % 3) * 4000))
fault_percent = $(((i % 4) * 5))"
  fi
  cat >"$dir/agent.toml" <<TOML
device_id = "$id"
state_dir = "$dir/state"
poll_interval_ms = 250
heartbeat_interval_ms = 5000

[mqtt]
broker = "$broker"

[[adapter]]
name = "sim"
type = "simulator"
$schedule
truth_file = "$dir/ground-truth.log"
TOML
  "$agent_bin" run --config "$dir/agent.toml" >"$run/logs/agent-$id.log" 2>&1 &
  agent_pids+=($!)
done <"$root/deploy/quickstart/instruments.csv"

cat <<INFO

== running (development mode: plain MQTT on 127.0.0.1 only)
  broker    mosquitto  $broker   (pid ${pids[0]}, config $run/broker/mosquitto.conf)
  hub       pid ${pids[1]}, database $run/hub/hub.db, config $hub_conf
  dashboard  http://127.0.0.1:$http_port/   (API under /api/v1/, /metrics, /healthz)
  agents    ${#agent_pids[@]} simulated instruments, configs and state in $run/agents/<id>/
  logs      $run/logs/

  instruments as the hub sees them:  $hub_bin status --config $hub_conf
  hours per instrument:              $hub_bin hours --from $(date -u +%F) --to $(date -u -d tomorrow +%F) --config $hub_conf
  one agent's view:                  $agent_bin status --config $run/agents/sh-fudan-nmr-600/agent.toml
INFO

if [ "$run_for" -eq 0 ]; then
  echo
  echo "Press Ctrl-C to stop."
  wait "${pids[1]}"
  exit 0
fi

start=$(date +%s)
last_line=-1
while true; do
  elapsed=$(( $(date +%s) - start ))
  [ "$elapsed" -ge "$run_for" ] && break
  if [ -t 1 ]; then
    printf '\r  running: %3d s of %d s' "$elapsed" "$run_for"
  elif [ $((elapsed / 10)) -ne "$last_line" ]; then
    last_line=$((elapsed / 10))
    echo "  running: $elapsed s of $run_for s"
  fi
  sleep 1
done
[ -t 1 ] && printf '\r  running: %3d s of %d s\n' "$run_for" "$run_for"

echo
echo "== the instruments as the hub sees them now"
"$hub_bin" status --config "$hub_conf"
silent=$("$hub_bin" status --format json --config "$hub_conf" |
  tr -d ' \n' | grep -o '"events_stored":0,[^}]*"instrument_id":"[^"]*"' | sed 's/.*"instrument_id":"//; s/"$//' | tr '\n' ' ' ||
  true)  # grep finds nothing when every instrument reported: not a failure
if [ -n "$silent" ]; then
  echo "these instruments reported nothing: $silent(see $run/logs/)" >&2
  exit 1
fi
exit 0
