# hearth — `make help` lists the targets.
CC      ?= gcc
SAN     ?=
BUILD   ?= build
OPT     ?= -O3 -march=native
CFLAGS  += -std=gnu11 $(OPT) -g -fopenmp -Wall -Wextra -Wshadow -Wno-unused-parameter \
           -Wvla-larger-than=65536 -fno-math-errno -Isrc $(if $(CI),-Werror)
LDLIBS  += -lopenblas -lpcre2-8 -ljansson -lsqlite3 -lmicrohttpd -lz -lm -lpthread
# src/rag's document parsers: md4c, libxml2, poppler (glib), libzip
RAG_PKGS := md4c libxml-2.0 poppler-glib libzip
LDLIBS  += $(shell pkg-config --libs $(RAG_PKGS) 2>/dev/null)
LDLIBS  += -licuuc
# Open MPI (Debian's libopenmpi-dev) for data-parallel training (src/dist)
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null)
CFLAGS  += $(MPI_CFLAGS)
LDLIBS  += $(MPI_LIBS)
ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
BUILD   := build-san
OPT     := -O1 -march=native
endif

LIB_SRC  := $(wildcard src/base/*.c src/tensor/*.c src/nn/*.c src/optim/*.c src/data/*.c \
                       src/gguf/*.c src/ckpt/*.c src/train/*.c src/tokenizer/*.c src/infer/*.c \
                       src/vstore/*.c src/rag/*.c src/server/*.c src/quant/*.c \
                       src/embed/*.c src/dist/*.c)
CLI_SRC  := $(wildcard src/cli/*.c)
TEST_SRC := $(filter-out tests/fuzz/%,$(wildcard tests/*.c tests/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all test san fuzz fuzz-build fuzz-replay bench bench-tokenizer bench-ckpt bench-ann bench-serve bench-infer bench-embed bench-finetune demo deps help clean format format-check
all: $(BUILD)/hearth $(BUILD)/libhearth.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/tests/%.o: CFLAGS += -Itests
$(BUILD)/src/rag/%.o: CFLAGS += $(shell pkg-config --cflags $(RAG_PKGS) 2>/dev/null)

$(BUILD)/libhearth.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/hearth: $(CLI_OBJ) $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/test_hearth: $(TEST_OBJ) $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -lcmocka -o $@

$(BUILD)/train_bench: bench/train_bench.c $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/ckpt_bench: bench/ckpt_bench.c $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/ann_bench: bench/ann_bench.c $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tokenizer_bench: bench/tokenizer_bench.c $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/quant_bench: bench/quant_bench.c $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/infer_ppbench: bench/infer_ppbench.c $(BUILD)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $^ $(LDLIBS) -o $@

deps: ## install the Debian packages hearth needs to build and test (idempotent)
	./tools/install-deps.sh

# Every bench program is built by `make test` (not run): a kernel-table or API change that
# breaks one fails CI instead of the next `make bench`.
BENCH_BIN := $(BUILD)/train_bench $(BUILD)/ckpt_bench $(BUILD)/ann_bench $(BUILD)/tokenizer_bench \
             $(BUILD)/quant_bench $(BUILD)/infer_ppbench

test: $(BUILD)/test_hearth $(BUILD)/hearth $(BENCH_BIN) fuzz-replay ## build and run every test
	OMP_NUM_THREADS=2 ./$(BUILD)/test_hearth
	./tests/cli/test_cli.sh ./$(BUILD)/hearth
	./tests/cli/test_tools.sh ./$(BUILD)/hearth
	node tests/tokenizer/parity.mjs ./$(BUILD)/hearth
	./tests/cli/test_generate.sh ./$(BUILD)/hearth
	./tests/cli/test_chat.sh ./$(BUILD)/hearth
	./tests/cli/test_vstore.sh ./$(BUILD)/hearth
	./tests/cli/test_rag.sh ./$(BUILD)/hearth
	./tests/server/test_serve.sh ./$(BUILD)/hearth
	./tests/server/test_serve_lora.sh ./$(BUILD)/hearth
	./tests/server/test_embed.sh ./$(BUILD)/hearth
	./tests/cli/test_finetune.sh ./$(BUILD)/hearth
	./tests/dist/test_dist.sh ./$(BUILD)/hearth
	./tests/dist/test_netns.sh ./$(BUILD)/hearth

san: ## the tests under AddressSanitizer + UndefinedBehaviorSanitizer
	$(MAKE) SAN=1 test

# ---- fuzzing (tests/fuzz; docs/ARCHITECTURE.md, "Fuzzing"). One libFuzzer target per parser
# of outside input, built with clang into build-fuzz/ over the library compiled there with the
# fuzzer's instrumentation and ASan + UBSan. `make test` needs no clang: it builds the same
# targets with $(CC) and a plain main (tests/fuzz/replay.c) and replays each over its seeds and
# the committed reproducers (tests/fuzz/regress/<target>/).
FUZZ_TARGETS := gguf safetensors htok shard manifest trainer openai chroma where docs
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -std=gnu11 -g -O1 -march=native -fopenmp -fno-math-errno -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wno-pass-failed \
                -Isrc -Itests/fuzz $(MPI_CFLAGS)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_COMMON  := tests/fuzz/fuzz_util.c

$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/src/rag/%.o: FUZZ_CFLAGS += $(shell pkg-config --cflags $(RAG_PKGS) 2>/dev/null)

$(FUZZ_BUILD)/libhearth.a: $(FUZZ_LIB_OBJ)
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) tests/fuzz/fuzz.h $(FUZZ_BUILD)/libhearth.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(filter %.c,$^) $(FUZZ_BUILD)/libhearth.a \
	    $(LDLIBS) -o $@

$(BUILD)/fuzz/replay_%: tests/fuzz/fuzz_%.c $(FUZZ_COMMON) tests/fuzz/replay.c tests/fuzz/fuzz.h \
                        $(BUILD)/libhearth.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/fuzz $(LDFLAGS) $(filter %.c,$^) $(BUILD)/libhearth.a $(LDLIBS) -o $@

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz: fuzz-build $(BUILD)/hearth ## run every fuzz target FUZZ_SECONDS (60) on seeds hearth writes; fails on a finding
	./tests/fuzz/run.sh $(BUILD)/hearth $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fuzz-replay: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/replay_%) $(BUILD)/hearth ## every fuzz target once over its seeds and reproducers (no clang)
	./tests/fuzz/seeds.sh $(BUILD)/hearth $(BUILD)/fuzz/seeds
	for t in $(FUZZ_TARGETS); do \
	    ./$(BUILD)/fuzz/replay_$$t $(BUILD)/fuzz/seeds/$$t \
	        $$(ls -d tests/fuzz/regress/$$t 2>/dev/null) || exit 1; \
	done

bench: bench-tokenizer bench-ckpt bench-ann bench-infer bench-serve $(BUILD)/train_bench $(BUILD)/hearth ## peer benchmarks (slow; results go in docs/BENCHMARKS.md)
	BUILD=$(BUILD) ./bench/train_bench.sh

bench-tokenizer: $(BUILD)/tokenizer_bench $(BUILD)/hearth ## tokenizer encode MB/s vs tiktoken (npm), training time
	BUILD=$(BUILD) ./bench/tokenizer_bench.sh

bench-ckpt: $(BUILD)/ckpt_bench ## checkpoint write MB/s vs dd on the same disk; step time with one in flight
	BUILD=$(BUILD) ./bench/ckpt_bench.sh

bench-ann: $(BUILD)/ann_bench ## HNSW recall/QPS/build time vs hnswlib and FAISS (fashion-mnist)
	BUILD=$(BUILD) ./bench/ann_bench.sh

bench-infer: $(BUILD)/hearth $(BUILD)/infer_ppbench ## generation vs llama.cpp on the same GGUF files (gpt2-124m; a 1.1B Llama in Q4_0, Q8_0, Q4_K_M, F16 vs llama-bench)
	BUILD=$(BUILD) ./bench/infer_bench.sh
	BUILD=$(BUILD) ./bench/infer_1b_bench.sh

bench-embed: $(BUILD)/hearth ## embedding texts/s vs llama-embedding on the same GGUF (MiniLM's shape, random weights; F32, F16)
	./bench/embed_bench.sh

bench-serve: $(BUILD)/hearth ## serving load test vs llama-server: TTFT, ITL, latency percentiles, throughput
	BUILD=$(BUILD) ./bench/serve_bench.sh

bench-finetune: $(BUILD)/hearth ## LoRA step time and peak memory vs PyTorch on a 300M Llama
	BUILD=$(BUILD) ./bench/finetune_bench.sh

demo: $(BUILD)/hearth ## train the small preset on a real corpus for a few minutes
	./tools/demo.sh

FORMAT_SRC = $(sort $(LIB_SRC) $(CLI_SRC) $(TEST_SRC) $(wildcard src/*/*.h tests/*.h tests/*/*.h tests/fuzz/*.c \
                    bench/*.c))

format: ## clang-format every C file
	clang-format -i $(FORMAT_SRC)

format-check: ## fail if any C file is not as clang-format writes it (CI runs it)
	clang-format --dry-run --Werror $(FORMAT_SRC)

clean:
	rm -rf build build-san build-fuzz

help: ## this list
	@grep -E '^[a-z-]+:.*## ' Makefile | sed 's/:.*## /\t/' | sort

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d)
