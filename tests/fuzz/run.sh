#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang++-14, ASan + UBSan) and runs each for SECONDS (default 60)
# on a copy of its committed seed corpus. Fails when any harness crashes, leaks or trips a
# sanitizer; crash inputs stay in build-fuzz/artifacts/<harness>/.
#   tests/fuzz/run.sh [SECONDS] [HARNESS...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
seconds=${1:-60}
shift || true
"$root/deploy/install-deps.sh" build test fuzz

build_dir="$root/build-fuzz"
echo "== configure ($build_dir)"
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 \
  -DINSTRUMETER_SANITIZE=ON -DINSTRUMETER_FUZZ=ON \
  -DCMAKE_CXX_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
echo "== build"
cmake --build "$build_dir" -j2 --target instrumeter_fuzzers >"$build_dir/fuzz-build.log" 2>&1 || {
  tail -40 "$build_dir/fuzz-build.log"
  exit 1
}

harnesses=("$@")
if [ ${#harnesses[@]} -eq 0 ]; then
  for bin in "$build_dir"/tests/fuzz/*_fuzzer; do
    name=$(basename "$bin")
    harnesses+=("${name%_fuzzer}")
  done
fi
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for h in "${harnesses[@]}"; do
  work="$build_dir/corpus/$h"
  artifacts="$build_dir/artifacts/$h/"
  mkdir -p "$work" "$artifacts"
  cp -n "$root/tests/fuzz/corpus/$h/"* "$work/" 2>/dev/null || true
  echo "== fuzz $h for ${seconds}s"
  # One process, bounded memory; -max_total_time bounds the run, the timeout any single input.
  if "$build_dir/tests/fuzz/${h}_fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$artifacts" -print_final_stats=1 "$work" >"$build_dir/fuzz-$h.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^#[0-9]+.*DONE" "$build_dir/fuzz-$h.log" | tail -2 || true
  else
    echo "FAILED: $h (log: $build_dir/fuzz-$h.log, inputs: $artifacts)"
    tail -30 "$build_dir/fuzz-$h.log"
    failed+=("$h")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#harnesses[@]} harnesses failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: all ${#harnesses[@]} harnesses ran ${seconds}s without a finding"
