# The two entry points of the README. Both install missing Debian packages first.
#   make demo    build (release-ish) and run the demo in private network namespaces
#   make check   build with ASan/UBSan and run the whole test suite
BUILD       ?= build
CHECK_BUILD ?= build-check
FUZZ_BUILD  ?= build-fuzz
# CI's short libFuzzer run: these harnesses, this long each.
FUZZ_CI_HARNESSES ?= dns dnsbuild pkt wg tunseg tunnel
FUZZ_CI_SECONDS   ?= 20
FUZZ_ENV = ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all build demo check fuzz fuzz-ci install clean

all: build

build:
	@bash scripts/deps.sh
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true
	@ninja -C $(BUILD)

demo: build
	@bash demo/demo.sh $(BUILD)

check:
	@bash scripts/deps.sh --test
	@[ -f $(CHECK_BUILD)/build.ninja ] || meson setup $(CHECK_BUILD) \
		-Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
	@ninja -C $(CHECK_BUILD)
	@bash scripts/run-tests.sh $(CHECK_BUILD)

fuzz:
	@bash scripts/deps.sh
	@# fuzzer-no-link instruments the code under test too, not only the harness files:
	@# without it libFuzzer sees almost no coverage.
	@[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link
	@ninja -C $(FUZZ_BUILD)
	@bash scripts/run-fuzz.sh $(FUZZ_BUILD)

# The real libFuzzer binaries of the DNS parser and builder, the packet parser, the WireGuard
# engine, the tunnel segmentation and the tunnel settings planner
# (FUZZ_CI_HARNESSES) for FUZZ_CI_SECONDS each, from
# the committed seeds (new inputs go to FUZZ_BUILD/fuzz/NAME/ci/corpus). One line per
# harness; libFuzzer's output is in FUZZ_BUILD/fuzz/NAME/ci/log, whose tail is printed when
# it finds something (the crashing input is kept next to it).
fuzz-ci:
	@bash scripts/deps.sh
	@mkdir -p $(FUZZ_BUILD)
	@[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false -Dc_args=-fsanitize=fuzzer-no-link \
		>$(FUZZ_BUILD)/fuzz-ci-setup.log 2>&1 || { tail -n 20 $(FUZZ_BUILD)/fuzz-ci-setup.log; exit 1; }
	@ninja -C $(FUZZ_BUILD) $(addprefix tests/fuzz-,$(FUZZ_CI_HARNESSES)) \
		>$(FUZZ_BUILD)/fuzz-ci-build.log 2>&1 || { tail -n 30 $(FUZZ_BUILD)/fuzz-ci-build.log; exit 1; }
	@rc=0; for h in $(FUZZ_CI_HARNESSES); do \
		out=$(FUZZ_BUILD)/fuzz/$$h/ci; rm -rf $$out; mkdir -p $$out/corpus; \
		$(FUZZ_ENV) $(FUZZ_BUILD)/tests/fuzz-$$h -max_total_time=$(FUZZ_CI_SECONDS) -timeout=10 \
			-print_final_stats=1 -artifact_prefix=$$out/ $$out/corpus tests/fuzz/corpus/$$h \
			>$$out/log 2>&1; \
		r=$$?; runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$out/log); \
		if [ $$r -eq 0 ]; then \
			echo "fuzz-ci: fuzz-$$h: $${runs:-?} inputs in $(FUZZ_CI_SECONDS) s, nothing found"; \
		else \
			rc=1; echo "fuzz-ci: fuzz-$$h: FOUND something (exit $$r); $$out/log ends:"; \
			tail -n 40 $$out/log; \
		fi; \
	done; exit $$rc

install: build
	@meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(CHECK_BUILD) $(FUZZ_BUILD)
