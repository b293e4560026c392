#!/usr/bin/env bash
# Agent footprint (issue 7, item 4): one instrumeter-agent polling THREE real adapters every
# second, delivering to a real hub through a real Mosquitto, measured from /proc.
#   tests/bench/agent_footprint.sh               10 minutes (the issue's run)
#   tests/bench/agent_footprint.sh --minutes N   N minutes
#   tests/bench/agent_footprint.sh --quick       2 minutes (figures are rougher)
#   tests/bench/agent_footprint.sh --build-dir D use (and build into) D instead of build-footprint
#   tests/bench/agent_footprint.sh --agent-bin F measure the agent binary F (e.g. a build of an
#                                                older commit, for a before/after comparison)
#   tests/bench/agent_footprint.sh --heartbeat-ms M  heartbeat_interval_ms (default 10000)
# The adapters: `simulator` (power: a seeded schedule of minutes-long periods), `process` (use:
# a real process this script starts, found by its command line) and `logfile` (use: a real log
# file this script appends acquisition start/end lines to). Heartbeat at the default 10 s.
# Prints RSS (peak and steady), CPU, binary size and disk writes per hour against the targets
# (8 MB, 0.5 % of one core, 1 MB/h) and exits 1 when one is missed, 2 on a usage error.
# Loopback only; everything started here is stopped on exit (also on Ctrl-C).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

minutes=10
agent_bin_override=""
heartbeat_ms=10000
build="$root/build-footprint"
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes="${2:?--minutes needs a number}"; shift ;;
    --quick) minutes=2 ;;
    --build-dir) build="${2:?--build-dir needs a directory}"; shift ;;
    --agent-bin) agent_bin_override="${2:?--agent-bin needs a file}"; shift ;;
    --heartbeat-ms) heartbeat_ms="${2:?--heartbeat-ms needs milliseconds}"; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "agent_footprint.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$minutes" =~ ^[1-9][0-9]*$ ]] || { echo "agent_footprint.sh: --minutes wants whole minutes" >&2; exit 2; }
[[ "$heartbeat_ms" =~ ^[1-9][0-9]*$ ]] || { echo "agent_footprint.sh: --heartbeat-ms wants milliseconds" >&2; exit 2; }

readonly kMaxRssKb=8192            # 8 MB (MiB, as ps and /proc count)
readonly kMaxCpuPermille=5         # 0.5 % of one core
readonly kMaxWriteBytesPerHour=1000000
# The first moments (outbox creation, connecting, first state) are not steady state: the
# per-hour and CPU figures are taken after this warm-up.
readonly kWarmupS=30

echo "== building instrumeter-agent and instrumeter-hub (Release) in $build"
mkdir -p "$build"
build_log="$build/agent_footprint-build.log"
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DINSTRUMETER_BUILD_TESTS=OFF \
         -DINSTRUMETER_WERROR=OFF &&
       cmake --build "$build" -j2 --target instrumeter-agent instrumeter-hub; } >"$build_log" 2>&1; then
  tail -30 "$build_log" >&2
  echo "agent_footprint.sh: the build failed; the whole log is in $build_log" >&2
  exit 1
fi
agent_bin="${agent_bin_override:-$build/agent/instrumeter-agent}"
[ -x "$agent_bin" ] || { echo "agent_footprint.sh: no agent binary at $agent_bin" >&2; exit 2; }
hub_bin="$build/hub/instrumeter-hub"

# state_dir must be on a real disk: on tmpfs nothing is ever written to a block device.
work=$(mktemp -d "${TMPDIR:-/var/tmp}/agent-footprint.XXXXXX")
fs_type=$(df --output=fstype "$work" | tail -1)
mkdir -p "$work"/{broker,hub,agent/state,logs,instrument}

pids=()
agent_pid=""
cleanup() {
  trap '' INT TERM
  trap - EXIT
  [ -n "$agent_pid" ] && kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && wait "$pid" 2>/dev/null || true; done
  echo "stopped everything this script started; files are in $work"
}
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

echo "== starting mosquitto, the hub and the instrument's peers in $work ($fs_type)"
port=$(pick_port)
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root"
sed -e "s|@PORT@|$port|" -e "s|@DATA_DIR@|$work/broker|" -e "s|@LOG_FILE@|$work/logs/mosquitto.log|" \
  -e "s|@USER_LINE@|$user_line|" "$root/deploy/mosquitto/dev.conf.in" >"$work/broker/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/broker/mosquitto.conf" >>"$work/logs/mosquitto.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do port_is_free "$port" || break; sleep 0.1; done
port_is_free "$port" && { echo "mosquitto did not start; see $work/logs/mosquitto.log" >&2; exit 1; }
broker="tcp://127.0.0.1:$port"

http_port=$(pick_port)
while [ "$http_port" = "$port" ]; do http_port=$(pick_port); done
device="bench-footprint-01"
cat >"$work/hub/hub.toml" <<TOML
[mqtt]
broker = "$broker"

[store]
path = "$work/hub/hub.db"

[http]
listen = "127.0.0.1:$http_port"
TOML
printf 'instrument_id,name,institution,site,city,region\n%s,Footprint bench,Bench,Lab,Shanghai,Shanghai\n' \
  "$device" >"$work/hub/instruments.csv"
"$hub_bin" instruments import "$work/hub/instruments.csv" --config "$work/hub/hub.toml" >/dev/null
"$hub_bin" run --config "$work/hub/hub.toml" >"$work/logs/hub.log" 2>&1 &
pids+=($!)

# The acquisition software: a real process, found by the process adapter through its command line.
marker="footprint-daq-$$"
bash -c "exec -a $marker sleep infinity" &
pids+=($!)
# The instrument's log: an acquisition starts and ends every 90 s.
instrument_log="$work/instrument/acquisition.log"
: >"$instrument_log"
(
  sleeper=""
  trap '[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null; exit 0' TERM
  while true; do
    echo "$(date -u +%FT%TZ) ACQ START run" >>"$instrument_log"; sleep 45 & sleeper=$!; wait "$sleeper"
    echo "$(date -u +%FT%TZ) ACQ END run" >>"$instrument_log"; sleep 45 & sleeper=$!; wait "$sleeper"
  done
) &
pids+=($!)

cat >"$work/agent/agent.toml" <<TOML
device_id = "$device"
state_dir = "$work/agent/state"
poll_interval_ms = 1000
heartbeat_interval_ms = $heartbeat_ms

[mqtt]
broker = "$broker"

[evidence]
power_sources = ["power"]
use_sources = ["power", "log"]

[[adapter]]
name = "power"
type = "simulator"
seed = 7
min_period_ms = 60000
max_period_ms = 300000

[[adapter]]
name = "daq"
type = "process"
cmdline_pattern = "$marker"

[[adapter]]
name = "log"
type = "logfile"
path = "$instrument_log"
initial_state = "IDLE"
rule = [
  { match = "ACQ START", state = "IN_USE" },
  { match = "ACQ END", state = "IDLE" },
]
TOML
"$agent_bin" check --config "$work/agent/agent.toml" >/dev/null
# The log goes through a pipe, as to journald under systemd: its bytes are not the agent's disk
# writes, and are counted separately below.
"$agent_bin" run --config "$work/agent/agent.toml" 2> >(cat >"$work/logs/agent.log") &
agent_pid=$!

clk_tck=$(getconf CLK_TCK)
# One sample: uptime_ms rss_kb hwm_kb cpu_ticks write_bytes wchar rchar
sample() {
  local up rss hwm stat io
  up=$(awk '{printf "%d", $1 * 1000}' /proc/uptime)
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$agent_pid/status")
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$agent_pid/status")
  stat=$(sed 's/.*) //' "/proc/$agent_pid/stat" | awk '{print $12 + $13}')
  io=$(awk '/^write_bytes:/ {w = $2} /^wchar:/ {c = $2} /^rchar:/ {r = $2} END {print w, c, r}' \
    "/proc/$agent_pid/io")
  echo "$up $rss $hwm $stat $io"
}

total_s=$((minutes * 60))
echo "== measuring agent pid $agent_pid for $minutes min (warm-up ${kWarmupS} s, sample every 5 s)"
samples="$work/samples.txt"
: >"$samples"
start=$(date +%s)
warm=""
while true; do
  kill -0 "$agent_pid" 2>/dev/null || { echo "the agent died; see $work/logs/agent.log" >&2; exit 1; }
  line=$(sample)
  elapsed=$(($(date +%s) - start))
  echo "$elapsed $line" >>"$samples"
  [ -z "$warm" ] && [ "$elapsed" -ge "$kWarmupS" ] && warm="$elapsed $line"
  [ "$elapsed" -ge "$total_s" ] && break
  sleep 5
done
last=$(tail -1 "$samples")
# RSS counts every shared-library page mapped into the agent; PSS shares them out among the
# processes that map them, and private (USS) is what the agent alone costs.
read -r pss_kb uss_kb < <(awk '/^Pss:/ {p = $2} /^Private_(Clean|Dirty):/ {u += $2} END {print p, u}' \
  "/proc/$agent_pid/smaps_rollup")
log_bytes=$(stat -c %s "$work/logs/agent.log")
outbox_depth=$("$agent_bin" status --config "$work/agent/agent.toml" --json 2>/dev/null |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("outbox_depth", "?"))' 2>/dev/null || echo "?")

unstripped=$(stat -c %s "$agent_bin")
strip -o "$work/agent-stripped" "$agent_bin"
stripped=$(stat -c %s "$work/agent-stripped")

# Every figure from the two samples: steady = after warm-up.
read -r w_el _ _ _ w_cpu w_wb w_wc _ <<<"$warm"
read -r l_el _ l_rss l_hwm l_cpu l_wb l_wc l_rc <<<"$last"
span=$((l_el - w_el))
steady_rss=$(awk 'NR > 1 && $1 >= '"$kWarmupS"' {print $3}' "$samples" | sort -n | tail -1)
cpu_permille=$(awk -v t="$((l_cpu - w_cpu))" -v hz="$clk_tck" -v s="$span" 'BEGIN {printf "%.2f", t / hz / s * 1000}')
wb_per_h=$(( (l_wb - w_wb) * 3600 / span ))
wc_per_h=$(( (l_wc - w_wc) * 3600 / span ))
log_per_h=$(( log_bytes * 3600 / l_el ))

failed=0
verdict() {  # verdict VALUE LIMIT -> "ok" or "MISSED"
  if awk -v v="$1" -v l="$2" 'BEGIN {exit !(v <= l)}'; then echo ok; else echo MISSED; fi
}
v_rss=$(verdict "$l_hwm" "$kMaxRssKb"); [ "$v_rss" = ok ] || failed=1
v_cpu=$(verdict "$cpu_permille" "$kMaxCpuPermille"); [ "$v_cpu" = ok ] || failed=1
v_wb=$(verdict "$wb_per_h" "$kMaxWriteBytesPerHour"); [ "$v_wb" = ok ] || failed=1

echo
echo "== agent footprint: 3 adapters (simulator, process, logfile), 1 s polling, heartbeat ${heartbeat_ms} ms,"
echo "   $minutes min run; per-hour figures extrapolated from the ${span} s after the warm-up;"
echo "   state_dir on $fs_type; outbox depth at the end: $outbox_depth"
printf '%-44s %18s %14s %s\n' "figure" "measured" "target" ""
printf '%-44s %15s KiB %10s KiB %s\n' "RSS peak (VmHWM)" "$l_hwm" "$kMaxRssKb" "$v_rss"
printf '%-44s %15s KiB %14s\n' "RSS steady (max VmRSS after warm-up)" "$steady_rss" ""
printf '%-44s %15s KiB %14s\n' "RSS at the end (VmRSS)" "$l_rss" ""
printf '%-44s %15s KiB %14s\n' "PSS (shared pages divided among users)" "$pss_kb" ""
printf '%-44s %15s KiB %14s\n' "private to the agent (USS)" "$uss_kb" ""
printf '%-44s %16s %% %12s %% %s\n' "CPU, share of one core (utime+stime)" \
  "$(awk -v p="$cpu_permille" 'BEGIN {printf "%.3f", p / 10}')" "0.5" "$v_cpu"
printf '%-44s %15s B %14s\n' "binary, unstripped" "$unstripped" ""
printf '%-44s %15s B %14s\n' "binary, stripped" "$stripped" ""
printf '%-44s %13s B/h %12s B/h %s\n' "disk writes (write_bytes), extrapolated" "$wb_per_h" \
  "$kMaxWriteBytesPerHour" "$v_wb"
printf '%-44s %13s B/h %14s\n' "bytes handed to write() (wchar), extrapol." "$wc_per_h" ""
printf '%-44s %13s B/h %14s\n' "log lines (stderr, through a pipe)" "$log_per_h" ""
printf '%-44s %15s B %14s\n' "read() bytes, whole run (rchar)" "$l_rc" ""
echo "samples (elapsed_s uptime_ms rss_kb hwm_kb cpu_ticks write_bytes wchar rchar): $samples"
if [ "$failed" -ne 0 ]; then
  echo "agent_footprint.sh: a target was missed" >&2
  exit 1
fi
