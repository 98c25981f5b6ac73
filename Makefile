# The two entry points of the README. Both install missing Debian packages first.
#   make demo    build (release-ish) and run the demo in private network namespaces
#   make check   build with ASan/UBSan and run the whole test suite
BUILD       ?= build
CHECK_BUILD ?= build-check
FUZZ_BUILD  ?= build-fuzz

.PHONY: all build demo check fuzz install clean

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

install: build
	@meson install -C $(BUILD)

clean:
	rm -rf $(BUILD) $(CHECK_BUILD) $(FUZZ_BUILD)
