/* tests/fuzz/fuzz.h: what the libFuzzer targets share. Each tests/fuzz/fuzz_<parser>.c defines
 * LLVMFuzzerTestOneInput over one parser that reads outside input, calling the library's real
 * entry point (from memory where the API takes memory, else through a file in a private
 * temporary directory). Built by `make fuzz` (clang, -fsanitize=fuzzer,address,undefined) and,
 * with tests/fuzz/replay.c for a main, by `make fuzz-replay` (any compiler, no libFuzzer). */
#ifndef HEARTH_FUZZ_H
#define HEARTH_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt/ckpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A temporary directory of this process, made on first use (under /dev/shm when it exists:
 * SQLite's and the checkpoints' fsyncs cost nothing there) and removed at exit. */
const char *fuzz_dir(void);
/* fuzz_dir()/name, in a static buffer overwritten by the next call. */
const char *fuzz_path(const char *name);
/* Writes n bytes to path (truncating); aborts on failure: the harness, not the input, broke. */
void fuzz_write(const char *path, const void *data, size_t n);
/* The shape of the models tests/fuzz/seeds.sh trains (preset tiny or llama-tiny, 1 layer,
 * width 16, vocabulary 320), so that seed files load all the way into a harness's model. */
void fuzz_config(nn_config *c, int llama);
/* A real checkpoint to feed damaged files to: a GPT-2-family model of fuzz_config with its
 * optimizer and trainer settings, saved once by ckpt_save as fuzz_dir()/run/step_00000001;
 * returns that directory. m, o and t are what ckpt_load needs to accept it (the same run).
 * With HEARTH_FUZZ_SEEDS set to a directory, its manifest.json and trainer.json are copied to
 * DIR/manifest/harness.json and DIR/trainer/harness.json: seeds that get past the CRC check
 * and the settings comparison (tests/fuzz/seeds/ holds them). */
const char *fuzz_checkpoint(nn_model **m, optim_adamw *o, ckpt_trainer *t);
/* With HEARTH_FUZZ_VERBOSE set, prints what a parse step gave (to check that the seeds get
 * deep: `HEARTH_FUZZ_VERBOSE=1 build/fuzz/replay_trainer DIR`); else nothing. Returns rc. */
int fuzz_report(const char *what, int rc, const base_err *e);
/* Aborts with a message: for harness set-up that failed. */
void fuzz_die(const char *what, const char *msg) __attribute__((noreturn));

#endif
