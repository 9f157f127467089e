/* data: training data for hearth train.
 *  - prepare (prepare.c): text files, directories and JSONL -> token shards, streaming: exact
 *    deduplication of documents, a train/val split by document hash, the end-of-text token
 *    before every document.
 *  - shards (shard.c): the HSHD file (docs/FORMATS.md): a checksummed header, then uint16 or
 *    uint32 token ids. A streaming writer, and a header check used by everything that reads.
 *  - the loader (loader.c): (B,T) batches of windows from shards or from a text file read as
 *    bytes, shuffled per epoch from a seed, with an exact position to save and restore.
 *  - the scikit-learn digits reader (digits.c), for hearth digits.
 *
 * Errors: functions return 0 or a negative BASE_E* code with a message in *e; nothing here
 * prints or exits. Every count and size read from a file is checked against the file. */
#ifndef HEARTH_DATA_H
#define HEARTH_DATA_H

#include "base/base.h"
#include "tokenizer/tokenizer.h"

enum { DATA_TRAIN = 0, DATA_VAL = 1 };

/* ---- shards */

#define DATA_SHARD_MAGIC "HSHD"
#define DATA_SHARD_VERSION 1
#define DATA_SHARD_HEADER 256 /* bytes before the ids */
#define DATA_IDENTITY_MAX 128 /* bytes of the vocabulary identity field */

/* What a shard's header says (all checked against the file it came from). */
typedef struct data_shard_info {
    uint32_t token_bytes; /* 2 (vocab_size <= 65536) or 4 */
    uint32_t vocab_size;
    uint64_t n_tokens, n_docs; /* n_docs: end-of-text tokens in the shard (documents begun) */
    int32_t eot_id;            /* -1: none */
    char identity[DATA_IDENTITY_MAX + 1]; /* the vocabulary's tok_identity, NUL-terminated */
} data_shard_info;

/* Checks the header of a shard image of file_len bytes (at least the header must be there):
 * magic, version, checksum, widths and counts, and that the ids fill the rest of the file
 * exactly. name is for messages. */
int data_shard_parse(const void *p, size_t file_len, const char *name, data_shard_info *info,
                     base_err *e);
/* Reads and checks the header of the shard at path (the ids are not read). */
int data_shard_read_info(const char *path, data_shard_info *info, base_err *e);

/* A shard written streaming: ids go to PATH.tmp.PID; commit writes the header, fsyncs and
 * renames it into place; abort removes it. Every id must be in [0, vocab_size). */
typedef struct data_shard_writer data_shard_writer;
int data_shard_create(data_shard_writer **out, const char *path, uint32_t vocab_size,
                      int32_t eot_id, const char *identity, base_err *e);
int data_shard_write(data_shard_writer *w, const int32_t *ids, size_t n, base_err *e);
uint64_t data_shard_tokens(const data_shard_writer *w);   /* written so far */
int data_shard_commit(data_shard_writer *w, base_err *e); /* frees w, also on failure */
void data_shard_abort(data_shard_writer *w);              /* frees w; NULL is fine */

/* ---- prepare: inputs -> OUT/train_NNNNNN.bin, OUT/val_NNNNNN.bin, vocab.htok, prepare.json */

typedef struct data_prepare_progress {
    uint64_t bytes_done, bytes_total; /* input bytes handled, of all inputs */
    uint64_t docs, tokens;            /* documents written, tokens written (both splits) */
    double seconds;                   /* since the start */
    int done;                         /* the last report */
} data_prepare_progress;

typedef struct data_prepare_opts {
    tok_vocab *vocab;          /* encodes (so not shared with another thread); must have EOT */
    const char *out_dir;       /* created if missing; must not hold a prepare.json */
    const char *const *inputs; /* files, directories (recursed, sorted), *.jsonl files */
    size_t n_inputs;
    const char *field;     /* the JSONL field holding the text (NULL: "text") */
    double val_frac;       /* [0, 1): the expected fraction of documents in val; when the
                              inputs are one text file (one document), the fraction of its
                              bytes at its end that go to val (llm.c's and nanoGPT's split) */
    uint64_t shard_tokens; /* tokens per shard (0: DATA_SHARD_TOKENS) */
    uint64_t seed;         /* salts the split: which documents go to val */
    /* optional: progress about every 0.2 s and once at the end; warnings (a malformed JSONL
     * line, with FILE:LINE) as they happen. Both may be NULL. */
    void (*progress)(const data_prepare_progress *p, void *user);
    void (*warn)(const char *msg, void *user);
    void *user;
} data_prepare_opts;

#define DATA_SHARD_TOKENS 100000000ull
#define DATA_MAX_LINE (64u << 20) /* a longer JSONL line is skipped as malformed */

typedef struct data_prepare_stats {
    uint64_t files, bytes; /* input files read and their bytes */
    uint64_t docs;         /* documents written (after dedup) */
    uint64_t duplicates;   /* documents dropped as exact copies of an earlier one */
    uint64_t empty;        /* empty documents skipped */
    uint64_t bad_lines;    /* malformed JSONL lines skipped */
    uint64_t forced_cuts;  /* places a document with no safe cut was cut anyway */
    uint64_t position_cut; /* one text file split by position: the bytes of its train part (the
                              rest is val); 0: documents split by hash */
    uint64_t split_docs[2], split_tokens[2], split_shards[2]; /* [DATA_TRAIN], [DATA_VAL] */
} data_prepare_stats;

/* Runs prepare. On failure nothing a loader would accept is left: committed shards are
 * removed, prepare.json (written last) is absent, and out_dir is removed if prepare made it
 * and it is empty. Memory: a few MB of buffers, the largest JSONL line (and its parse), and
 * the dedup set, 21..43 bytes per distinct document (up to 64 while it grows); it does not
 * grow with the size of a document or of the input. */
int data_prepare(const data_prepare_opts *o, data_prepare_stats *st, base_err *e);

/* A path as written in the JSON files hearth makes (prepare.json's inputs, a run's
 * config.json): a new JSON string (jansson; caller json_decref's it; NULL when out of memory),
 * bytes that are not UTF-8 (a file name can hold any) shown as '?'. */
struct json_t;
struct json_t *data_json_string(const char *s);

/* ---- the loader */

/* A position in the loader's stream: the epoch, the shard's index in that epoch's shard
 * order, the window's index in that shard's window order. It names the next window read. */
typedef struct data_pos {
    uint64_t epoch, shard, window;
} data_pos;

typedef struct data_loader data_loader;

/* Opens the training data at path for one split (DATA_TRAIN or DATA_VAL):
 *  - a directory written by data_prepare: its prepare.json names the split's shards;
 *  - any other file: its bytes are the tokens (vocabulary 256, identity "bytes"); the last
 *    DATA_BYTES_VAL_FRAC of it is DATA_VAL, the rest DATA_TRAIN.
 * Batches are B windows of T + 1 tokens (targets are the tokens shifted by one); windows do
 * not overlap (stride T) and do not cross shards. Each epoch visits every window once: the
 * shard order is a permutation drawn from (seed, epoch), each shard's window order one drawn
 * from (seed, epoch, shard). */
#define DATA_BYTES_VAL_FRAC 0.1
int data_loader_open(data_loader **out, const char *path, int split, int B, int T, uint64_t seed,
                     base_err *e);
/* The same over explicit shard files (all of one vocabulary). */
int data_loader_open_files(data_loader **out, const char *const *paths, size_t n, int B, int T,
                           uint64_t seed, base_err *e);
void data_loader_free(data_loader *l); /* NULL is fine */

/* Fills tokens (B,T) and targets (B,T) with the next B windows, moving across shards and
 * epochs. BASE_EFORMAT if a shard holds an id outside its vocabulary. tokens NULL: the B
 * windows are skipped, the position moves as if they were read (data-parallel training: each
 * rank reads its micro-batches of one global order and skips the other ranks'). */
int data_loader_next(data_loader *l, int *tokens, int *targets, base_err *e);
/* The position of the next window; seek returns to one (BASE_EINVAL if out of range), so that
 * the windows read after it are exactly those read after the tell. */
void data_loader_tell(const data_loader *l, data_pos *pos);
int data_loader_seek(data_loader *l, const data_pos *pos, base_err *e);

uint32_t data_loader_vocab_size(const data_loader *l);
int32_t data_loader_eot_id(const data_loader *l); /* -1 for bytes */
/* The vocabulary identity ("bytes" for a text file); valid until data_loader_free. */
const char *data_loader_identity(const data_loader *l);
uint64_t data_loader_windows(const data_loader *l); /* windows per epoch */
size_t data_loader_shards(const data_loader *l);

/* Whether the file at path (training data read as bytes) looks like something other than text:
 * a NUL byte, or more than 1% of bytes that are neither UTF-8 nor ordinary whitespace, in its
 * first DATA_SNIFF_BYTES. Returns 1 and a short reason in why (cap bytes), else 0 (also when
 * the file cannot be read: opening it reports that). */
#define DATA_SNIFF_BYTES 65536
int data_file_looks_binary(const char *path, char *why, size_t cap);

/* The vocabulary size of the data at path (as data_loader_open reads it), without opening
 * the shards: 256 for a file, prepare.json's for a directory. */
int data_vocab_size(const char *path, uint32_t *vocab_size, base_err *e);

/* ---- digits */

/* The 8x8 handwritten digits as scikit-learn ships them (digits.csv.gz: rows of 64 pixel
 * values 0..16, then the label 0..9). *x gets (n, 64) pixels scaled to [0, 1], *y (n) labels;
 * both malloc'd, caller frees. A malformed row is reported with its line number. */
int data_load_digits(const char *path, float **x, int **y, int *n, base_err *e);

#endif
