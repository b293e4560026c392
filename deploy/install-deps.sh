#!/usr/bin/env bash
# Installs the Debian 12 packages instrumeter needs that are not installed yet.
#   deploy/install-deps.sh [build] [test] [run] [fuzz]
# build: compilers and -dev libraries; test: test tools; run: the broker; fuzz: clang and its
# libFuzzer runtime (tests/fuzz/run.sh). Default: build, test and run.
# Idempotent and quiet when nothing is missing; needs root (or sudo) only when something is.
set -euo pipefail

build_pkgs=(g++ cmake make pkg-config clang-format
  libpaho-mqttpp-dev libpaho-mqtt-dev libssl-dev libprotobuf-dev protobuf-compiler
  libsqlite3-dev libboost-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev
  prometheus-cpp-dev libmodbus-dev libpcre2-dev libjemalloc-dev libsodium-dev zlib1g-dev)
test_pkgs=(libgtest-dev libgmock-dev libbenchmark-dev sqlite3 mosquitto-clients faketime chromium
  chromium-driver openssl curl libmosquitto-dev)
run_pkgs=(mosquitto)
fuzz_pkgs=(clang-14 libclang-rt-14-dev)

want=()
[ $# -eq 0 ] && set -- build test run
for set_name in "$@"; do
  case "$set_name" in
    build) want+=("${build_pkgs[@]}") ;;
    test) want+=("${test_pkgs[@]}") ;;
    run) want+=("${run_pkgs[@]}") ;;
    fuzz) want+=("${fuzz_pkgs[@]}") ;;
    *) echo "install-deps.sh: unknown package set '$set_name' (build, test, run, fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing ${#missing[@]} missing Debian packages: ${missing[*]}"
sudo=()
[ "$(id -u)" -ne 0 ] && sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet; an install failure retries after an update.
if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/instrumeter-apt.log 2>&1; then
  "${sudo[@]}" apt-get update -q >>/tmp/instrumeter-apt.log 2>&1
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>/tmp/instrumeter-apt.log 2>&1 || {
    echo "apt-get failed; see /tmp/instrumeter-apt.log" >&2
    tail -20 /tmp/instrumeter-apt.log >&2
    exit 1
  }
fi
# The Debian package starts a system-wide broker on port 1883; ours run on their own ports.
if [[ " ${missing[*]} " == *" mosquitto "* ]] && command -v systemctl >/dev/null && systemctl is-active -q mosquitto 2>/dev/null; then
  "${sudo[@]}" systemctl stop mosquitto || true
  "${sudo[@]}" systemctl disable mosquitto >/dev/null 2>&1 || true
fi
