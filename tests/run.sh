#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, and runs every test through ctest.
#   tests/run.sh              the default suite (unit + integration against a real Mosquitto)
#   tests/run.sh --sanitize   the same suite in a second build with ASan + UBSan
#   tests/run.sh --slow       also the long fault-injection and soak tests (label "slow")
#   tests/run.sh --fuzz [S]   also every libFuzzer harness for S seconds (default 10) in the
#                             separate clang build (tests/fuzz/run.sh)
#   tests/run.sh --skip-e2e   leave out the end-to-end tests (label "e2e": whole-stack runs of a
#                             minute each), e.g. for the sanitizer pass in CI
#   tests/run.sh -R REGEX     only the tests whose names match (passed to ctest)
# Tests start their own brokers, hubs and agents on free loopback ports and stop them.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sanitize=0
slow=0
skip_e2e=0
fuzz_seconds=0
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --sanitize) sanitize=1 ;;
    --slow) slow=1 ;;
    --skip-e2e) skip_e2e=1 ;;
    --fuzz)
      fuzz_seconds=10
      if [[ "${2:-}" =~ ^[0-9]+$ ]]; then fuzz_seconds=$2; shift; fi ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) ctest_args+=("$1") ;;
  esac
  shift
done

"$root/deploy/install-deps.sh" build test run

build_dir="$root/build-tests"
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DINSTRUMETER_WERROR=ON -DINSTRUMETER_FAULT_HOOKS=ON)
if [ "$sanitize" -eq 1 ]; then
  build_dir="$root/build-sanitize"
  # Unoptimised: compiles faster, and the sanitizers point at the exact line.
  cmake_args+=(-DINSTRUMETER_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

echo "== configure ($build_dir)"
cmake -S "$root" -B "$build_dir" "${cmake_args[@]}" >/dev/null
echo "== build"
cmake --build "$build_dir" -j"$(nproc)"
echo "== test"
# The slow fault tests include a 10-minute link cut: they get a longer per-test limit.
timeout=600
excluded=()
if [ "$slow" -eq 1 ]; then timeout=1800; else excluded+=(slow); fi
[ "$skip_e2e" -eq 1 ] && excluded+=(e2e slow)
if [ ${#excluded[@]} -gt 0 ]; then ctest_args+=(-LE "^($(IFS='|'; echo "${excluded[*]}"))\$"); fi
ctest --test-dir "$build_dir" --output-on-failure --timeout "$timeout" -j2 "${ctest_args[@]}"
if [ "$fuzz_seconds" -gt 0 ]; then
  echo "== fuzz"
  "$root/tests/fuzz/run.sh" "$fuzz_seconds"
fi
