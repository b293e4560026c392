#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test through ctest.
#   tests/run.sh              the default suite (unit + integration against a real Mosquitto)
#   tests/run.sh --sanitize   the same suite in a second build with ASan + UBSan
#   tests/run.sh --slow       also the long fault-injection and soak tests (label "slow")
#   tests/run.sh -R REGEX     only the tests whose names match (passed to ctest)
# Tests start their own brokers, hubs and agents on free loopback ports and stop them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sanitize=0
slow=0
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=1 ;;
    --slow) slow=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ctest_args+=("$1") ;;
  esac
  shift
done

"$root/deploy/install-deps.sh" build test run

build_dir="$root/build-tests"
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DINSTRUMETER_WERROR=ON -DINSTRUMETER_FAULT_HOOKS=ON)
if [ "$sanitize" -eq 1 ]; then
  build_dir="$root/build-sanitize"
  cmake_args+=(-DINSTRUMETER_SANITIZE=ON)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

echo "== configure ($build_dir)"
cmake -S "$root" -B "$build_dir" "${cmake_args[@]}" >/dev/null
echo "== build"
cmake --build "$build_dir" -j"$(nproc)"
echo "== test"
[ "$slow" -eq 1 ] || ctest_args+=(-LE slow)
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 -j2 "${ctest_args[@]}"
