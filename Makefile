# The two front-door commands:
#   make run    install what is missing, build, run a demo sandbox
#   make test   install what is missing, build, run the whole test suite
#               (normal build, then again under ASan+UBSan)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
DESTDIR    ?=

.PHONY: all deps build run test test-fast test-asan bench bench-egress fuzz install uninstall clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
	@ninja -C $(BUILD) -j $(JOBS)

run: build
	@scripts/demo.sh $(BUILD)/bin/ward

test-fast: build
	@scripts/test-user.sh
	@cd $(BUILD) && ctest --output-on-failure -j 2

test-asan: deps
	@scripts/test-user.sh
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARD_SANITIZE=ON >/dev/null
	@ninja -C $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j 2

test: test-fast test-asan

bench: build
	@$(BUILD)/bin/ward_startup_bench
	@$(BUILD)/bin/ward_lifecycle_bench
	@$(BUILD)/bin/ward_lifecycle_bench --scale 100 --execs 10
	@$(BUILD)/bin/ward_audit_bench

# Egress: 1 GiB download, connection set-up and start-up, each against its baseline.
bench-egress: build
	@$(BUILD)/bin/ward_egress_bench

# Every fuzzer for FUZZ_SECONDS (default 60) each; new inputs go to build-fuzz/corpus/NAME.
fuzz: deps
	@cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DWARD_FUZZ=ON -DWARD_TESTS=OFF >/dev/null
	@ninja -C build-fuzz
	@for f in build-fuzz/bin/*_fuzzer; do \
	  name=$$(basename $$f _fuzzer); mkdir -p build-fuzz/corpus/$$name; \
	  echo "fuzzing $$name"; $$f -max_total_time=$${FUZZ_SECONDS:-60} build-fuzz/corpus/$$name tests/fuzz/corpus/$$name || exit 1; \
	done

# ward on PATH, its man page (made from its --help) and bash/zsh completion.
install: build
	@scripts/install.sh $(BUILD) $(PREFIX) $(DESTDIR)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/ward $(DESTDIR)$(PREFIX)/share/man/man1/ward.1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ward $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_ward

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
