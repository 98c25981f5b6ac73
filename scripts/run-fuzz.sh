#!/usr/bin/env bash
# Runs every libFuzzer binary in BUILD_DIR/tests (fuzz-NAME, built with -Dfuzz=true) for
# SECONDS each (default 60), starting from tests/fuzz/corpus/NAME. New inputs go to
# BUILD_DIR/fuzz/NAME/corpus (the committed corpus is only read), crashes to
# BUILD_DIR/fuzz/NAME/crash-*. Exit status: 0 only when no harness found anything.
set -uo pipefail
build=${1:?usage: run-fuzz.sh BUILD_DIR [SECONDS]}
secs=${2:-60}
src=$(cd "$(dirname "$0")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

found=0 ran=0
for bin in "$build"/tests/fuzz-*; do
	name=$(basename "$bin")
	name=${name#fuzz-}
	case $name in *-standalone|*.p) continue ;; esac
	[ -x "$bin" ] && [ -f "$bin" ] || continue
	out="$build/fuzz/$name"
	mkdir -p "$out/corpus"
	seeds=()
	[ -d "$src/tests/fuzz/corpus/$name" ] && seeds=("$src/tests/fuzz/corpus/$name")
	echo "== fuzz-$name for ${secs}s"
	"$bin" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$out/" \
		"$out/corpus" "${seeds[@]}" >"$out/log" 2>&1
	rc=$?
	ran=$((ran + 1))
	grep -E '^stat::(number_of_executed_units|peak_rss_mb|new_units_added)' "$out/log" | sed 's/^/   /'
	echo "   corpus: $(find "$out/corpus" -type f | wc -l) inputs in $out/corpus"
	crashes=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
	if [ "$rc" -ne 0 ] || [ -n "$crashes" ]; then
		found=1
		echo "   FOUND (exit $rc):"
		grep -E 'ERROR: |runtime error|SUMMARY|fuzz-[a-z]+: ' "$out/log" | head -5 | sed 's/^/     /'
		for c in $crashes; do echo "     reproduce: $bin $c"; done
	else
		echo "   nothing found"
	fi
done
[ "$ran" -gt 0 ] || { echo "no libFuzzer binaries in $build/tests (configure with -Dfuzz=true and CC=clang)"; exit 2; }
exit "$found"
