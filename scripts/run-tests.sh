#!/usr/bin/env bash
# Runs the whole meson test suite in BUILD_DIR and ends with the line
# "N passed, N failed[, N skipped]". Exit status: 0 only when nothing failed.
set -uo pipefail
build=${1:-build-check}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

meson test -C "$build" --print-errorlogs --num-processes 1 --timeout-multiplier 2 \
	2>&1 | tee "$build/check.log"
rc=${PIPESTATUS[0]}

count() { awk -v k="$1" '$1 == k":" { n = $2 } END { print n + 0 }' "$build/check.log"; }
ok=$(count Ok)
fail=$(( $(count Fail) + $(count Timeout) ))
skip=$(count Skipped)
[ "$ok" -eq 0 ] && [ "$fail" -eq 0 ] && [ "$rc" -ne 0 ] && fail=1
if [ "$skip" -gt 0 ]; then
	echo "$ok passed, $fail failed, $skip skipped"
else
	echo "$ok passed, $fail failed"
fi
[ "$fail" -eq 0 ] && [ "$rc" -eq 0 ]
