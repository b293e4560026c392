#!/usr/bin/env bash
# Samples a running hub for a timeline of where its CPU went: every 0.5 s, the CPU ticks (1/100 s)
# used so far by each of its threads (/proc/<pid>/task/*/stat), and every second the messages
# queued between its MQTT client and its ingest thread (instrumeter_hub_mqtt_queued_messages from
# GET /metrics). One line per sample: unix time, tid:ticks for each thread, q=N when read.
# Waits for a hub to serve HTTP, stops when that hub exits (docs/performance.md, "Capacity",
# item 12).
#
#   tests/bench/hub_sampler.sh OUT     e.g. beside `tests/bench/run.sh --only capacity`
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = --help ] || [ "$1" = -h ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -eq 1 ] && exit 0
  exit 2
fi
out=$1

pid="" http=""
while [ -z "$http" ]; do
  pid=$(pgrep -x instrumeter-hub | head -1 || true)
  if [ -n "$pid" ]; then
    http=$(ss -ltnp 2>/dev/null | grep "pid=$pid," | grep -o '127\.0\.0\.1:[0-9]*' | head -1 || true)
  fi
  sleep 0.3
done
echo "# hub pid $pid, http $http" >"$out"
echo "hub_sampler: sampling hub $pid (http $http) into $out until it exits" >&2

sample=0
while kill -0 "$pid" 2>/dev/null; do
  line=$(date +%s.%N | cut -c1-14)
  for stat in /proc/"$pid"/task/*/stat; do
    # Fields after the command name: state is 1, utime 12, stime 13.
    fields=$(sed 's/.*) //' "$stat" 2>/dev/null) || continue
    read -r -a f <<<"$fields"
    tid=$(basename "$(dirname "$stat")")
    line+=" $tid:$((f[11] + f[12]))"
  done
  if [ $((sample % 2)) = 0 ]; then
    queued=$(curl -s -m 0.4 "http://$http/metrics" |
      awk '$1 == "instrumeter_hub_mqtt_queued_messages" {print $2}' || true)
    line+=" q=$queued"
  fi
  echo "$line" >>"$out"
  sample=$((sample + 1))
  sleep 0.5
done
echo "hub_sampler: hub $pid exited; $sample samples in $out" >&2
