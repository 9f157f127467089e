/* tokenizer: text <-> token ids. Two kinds of vocabulary behind one handle:
 *  - byte-level BPE (GPT-2 / tiktoken): the text is split into pieces by a regex (GPT-2's
 *    pattern or cl100k's, through PCRE2 with JIT), each piece is encoded as bytes merged by
 *    ranked pairs. Any byte string round-trips exactly, invalid UTF-8 included.
 *  - SentencePiece-style (Llama, from GGUF): spaces become U+2581, a space is prefixed to the
 *    text, characters are merged by token score, and characters with no token fall back to
 *    <0xXX> byte tokens.
 * Vocabularies come from hearth's own file (docs/FORMATS.md, "HTOK"), a GGUF file's
 * tokenizer.ggml.* keys, a tiktoken ranks file, or tok_train().
 *
 * Ownership and lifetimes: every tok_vocab comes from tok_load, tok_parse, tok_load_gguf,
 * tok_import_tiktoken or tok_train(er_finish) and is released with tok_free(). Pointers returned by
 * queries (tok_identity, tok_token_text) point into the vocabulary and stay valid until tok_free().
 * Output buffers (tok_ids, the text of tok_decode) belong to the caller.
 *
 * Threads: tok_encode() uses scratch space and a piece cache inside the handle, so one handle
 * must not encode from two threads at once (load one handle per thread). Every other function
 * taking a const tok_vocab is safe to call concurrently.
 *
 * Errors: functions return 0 or a negative BASE_E* code with a message in *e; nothing here
 * prints or exits. Every count and length read from a file is bounds- and overflow-checked. */
#ifndef HEARTH_TOKENIZER_H
#define HEARTH_TOKENIZER_H

#include "base/base.h"
#include "gguf/gguf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tok_vocab tok_vocab;

enum { TOK_KIND_BPE = 1, TOK_KIND_SPM = 2 };

/* Pre-tokenizers (byte-level BPE only). GPT2 and CL100K are tiktoken's patterns (hearth's own
 * and tiktoken vocabularies, js-tiktoken the reference); the others are llama.cpp's splits of
 * GGUF vocabularies by their tokenizer.ggml.pre, llama.cpp the reference (TOK_PRETOK_GGUF_GPT2
 * is llama.cpp's "gpt-2": GPT-2's pattern with llama.cpp's whitespace). tok_pretok_name() gives
 * each one's name; the values are stored in HTOK files and never change. */
enum {
    TOK_PRETOK_NONE = 0,   /* SentencePiece-style vocabularies */
    TOK_PRETOK_GPT2 = 1,   /* GPT-2 / r50k / p50k (tiktoken) */
    TOK_PRETOK_CL100K = 2, /* cl100k_base (tiktoken) */
    TOK_PRETOK_LLAMA3 = 3, /* "llama-bpe", "llama3", "llama-v3", "falcon3", "dbrx", "smaug-bpe" */
    TOK_PRETOK_QWEN2 = 4,  /* "qwen2", "deepseek-r1-qwen", "stablelm2", "megrez" */
    TOK_PRETOK_GGUF_GPT2 = 5, /* "gpt-2", "mpt", "olmo", "jais", "phi-2", "roberta-bpe", ... */
    TOK_PRETOK_SMOLLM = 6,    /* "smollm", "starcoder", "refact", "command-r", "codeshell", ... */
    TOK_PRETOK_FALCON = 7,    /* "falcon" */
    TOK_PRETOK_DEFAULT = 8,   /* "default" (and a file without tokenizer.ggml.pre) */
    TOK_PRETOK_DEEPSEEK_CODER = 10, /* "deepseek-coder" */
    TOK_PRETOK_BLOOM = 11,          /* "bloom", "poro-chat", "gpt3-finnish" */
    TOK_PRETOK_VIKING = 12,         /* "viking" */
    TOK_PRETOK_TEKKEN = 13,         /* "tekken" (Mistral Nemo) */
    TOK_PRETOK_COUNT
};
/* The name of a TOK_PRETOK_* value ("gpt2", "cl100k", "llama-bpe", "qwen2", ...; "none"). */
const char *tok_pretok_name(int pretok);

/* Token types: GGUF's numbering. */
enum {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3, /* special tokens such as <|endoftext|>, <s> */
    TOK_TYPE_USER = 4,    /* user-defined: matched like specials */
    TOK_TYPE_UNUSED = 5,  /* placeholders (holes in the id range); never produced */
    TOK_TYPE_BYTE = 6,    /* SentencePiece byte fallback <0xXX> */
};

#define TOK_MAX_TOKENS (1 << 24)    /* vocabulary size limit */
#define TOK_MAX_TOKEN_LEN (1 << 16) /* bytes in one token */

/* ---- loading and saving */

/* Loads a vocabulary file, recognised by its first bytes: hearth's HTOK or GGUF. */
int tok_load(const char *path, tok_vocab **out, base_err *e);
/* Parses an HTOK image in memory (data is not kept). */
int tok_parse(const void *data, size_t len, tok_vocab **out, base_err *e);
/* Builds the vocabulary described by an open GGUF file's tokenizer.ggml.* keys: model "gpt2"
 * (byte-level BPE; pre "gpt-2"/"default" or "llama-bpe") or "llama" (SentencePiece-style). */
int tok_load_gguf(const gguf_file *g, tok_vocab **out, base_err *e);
/* The inverse: v's tokenizer.ggml.* keys into a GGUF being written (llama.cpp reads them). */
int tok_gguf_set(const tok_vocab *v, gguf_writer *w, base_err *e);

/* A special token to add on import: its text and id (-1: the next free id). */
typedef struct tok_special {
    const char *text;
    int32_t id;
} tok_special;
/* Imports a tiktoken ranks file (one "BASE64 RANK" line per token, as OpenAI's *.tiktoken
 * files and tools/tiktoken_export.js write them) as byte-level BPE with the given pre-tokenizer.
 * Token id = rank; merges are every split of a token into two tokens, ranked by the token's
 * id (tiktoken's rule). Holes in the id range become UNUSED tokens. The first special becomes
 * the end-of-text token. */
int tok_import_tiktoken(const char *path, int pretok, const tok_special *specials,
                        size_t n_specials, tok_vocab **out, base_err *e);

/* Writes v as an HTOK file, atomically. */
int tok_save(const tok_vocab *v, const char *path, base_err *e);
void tok_free(tok_vocab *v); /* NULL is fine */

/* ---- queries */
int32_t tok_vocab_size(const tok_vocab *v);
int tok_kind(const tok_vocab *v);       /* TOK_KIND_* */
int tok_pretok(const tok_vocab *v);     /* TOK_PRETOK_* */
int32_t tok_eot_id(const tok_vocab *v); /* end of text (<|endoftext|>, </s>), or -1 */
int32_t tok_bos_id(const tok_vocab *v); /* beginning of text (<s>), or -1 */
/* ---- special tokens as llama.cpp sees them (the prompt path and the chat templates) */
int32_t tok_eos_id(const tok_vocab *v); /* the file's eos_token_id: the same as tok_eot_id() */
/* The end-of-turn token (llama.cpp's "eot"): tokenizer.ggml.eot_token_id, else the first token
 * of these texts that exists: <|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>,
 * <EOT>, <｜end▁of▁sentence｜>; -1 if none. */
int32_t tok_end_of_turn_id(const tok_vocab *v);
int32_t tok_eom_id(const tok_vocab *v); /* eom_token_id, else <|eom_id|>; -1 if none */
/* Whether a prompt starts with BOS / ends with EOS (llama.cpp's add_bos / add_eos): the GGUF's
 * tokenizer.ggml.add_bos_token / add_eos_token, else llama.cpp's default for the tokenizer:
 * SentencePiece adds BOS; byte-level BPE does not, except the llama-bpe pre-tokenizer. HTOK
 * vocabularies of hearth's own: neither. TOK_ENCODE_ADD_SPECIAL applies them. */
int tok_add_bos(const tok_vocab *v);
int tok_add_eos(const tok_vocab *v);
/* The end-of-generation tokens, ascending (llama.cpp's rule): eos, end-of-turn, eom, the FIM
 * pad/repo/file-separator tokens, and every token whose text is <|eot_id|>, <|im_end|>,
 * <|end|>, <end_of_turn>, <|endoftext|>, <|eom_id|> or <EOT>. *ids points into the vocabulary
 * (valid until tok_free). Generation stops at any of them and never prints them. */
size_t tok_eog_ids(const tok_vocab *v, const int32_t **ids);
int tok_is_eog(const tok_vocab *v, int32_t id);
/* A stable identity: "KIND:PRETOK:SIZE:HASH", e.g. "bpe:gpt2:50257:0123456789abcdef", where
 * HASH is the FNV-1a 64 of the vocabulary's HTOK serialization (docs/FORMATS.md). The same
 * vocabulary gives the same string whatever file it came from; shards record it. */
const char *tok_identity(const tok_vocab *v);
/* The type of token id, or -1 if id is out of range. */
int tok_token_type(const tok_vocab *v, int32_t id);
/* The bytes token id decodes to (SentencePiece: U+2581 as a space, byte tokens as their byte;
 * special tokens as their text). BASE_EINVAL if id is out of range. */
int tok_token_text(const tok_vocab *v, int32_t id, const char **text, size_t *len, base_err *e);
/* The id of the token whose stored text is exactly (text, len), or -1. */
int32_t tok_find(const tok_vocab *v, const char *text, size_t len);

/* ---- encoding */

/* A growable array of token ids; zero-initialise it, free with tok_ids_free(). */
typedef struct tok_ids {
    int32_t *data;
    size_t len, cap;
} tok_ids;
void tok_ids_free(tok_ids *ids);
/* Appends one id (e.g. BOS or end-of-text around a document); BASE_ENOMEM on failure. */
int tok_ids_push(tok_ids *ids, int32_t id);

/* Flags of tok_encode. */
enum {
    TOK_ENCODE_SPECIAL = 1,  /* special-token text becomes its token (llama.cpp's parse_special) */
    TOK_ENCODE_CONTINUE = 2, /* the text continues one encoded before, cut at tok_stream_cut:
                                no SentencePiece space prefix */
    TOK_ENCODE_ADD_SPECIAL = 4, /* BOS first / EOS last as tok_add_bos / tok_add_eos say
                                   (llama.cpp's add_special) */
};

/* Encodes len bytes of text (any bytes: never rejected) and APPENDS the ids to *out.
 * flags 0: the text of CONTROL and UNKNOWN tokens is ordinary text; USER (user-defined) tokens
 * are always matched (llama.cpp's rule, from Hugging Face's tokenizers).
 * TOK_ENCODE_SPECIAL: the text of CONTROL, USER and UNKNOWN tokens (e.g. "<|im_start|>") becomes
 * that token, longer texts first. SentencePiece-style vocabularies prefix a space to each run of
 * text at the start or after a special token (when the vocabulary says so; not at the start with
 * TOK_ENCODE_CONTINUE). BOS/EOS only with TOK_ENCODE_ADD_SPECIAL.
 * A GGUF vocabulary encodes exactly as llama.cpp's llama_tokenize(text, add_special,
 * parse_special): invalid UTF-8 in byte-level BPE text becomes U+FFFD first, as there. */
int tok_encode(tok_vocab *v, const char *text, size_t len, int flags, tok_ids *out, base_err *e);

/* Streaming a long text: returns the last cut c in [1, len) such that encoding text[0, c)
 * and then, with TOK_ENCODE_CONTINUE, everything after c gives exactly the ids of encoding
 * the whole text at once (without TOK_ENCODE_SPECIAL) -- whatever bytes follow text[len). 0 if
 * there is none. The cuts, which never split a UTF-8 character or a pre-tokenizer piece:
 *  - byte-level BPE (GPT-2 and cl100k patterns): after "X\nY" with X and Y printable ASCII other
 *    than space, i.e. between '\n' and Y; or before a space that follows an ASCII letter
 *    ("word| next"). (After '\n' alone is not enough for GPT-2: "a \n" + "b" splits as
 *    "a", " ", "\n", "b" whole but "a", " \n" when the text ends at the newline.)
 *    The same cuts hold for llama.cpp's pre-tokenizers (each splits at least where GPT-2's or
 *    cl100k's does around them; invalid bytes never join an ASCII byte).
 *  - SentencePiece-style: after any '\n', when no mergeable token holds a newline (else none)
 *    and (GGUF) no lead byte just before takes the newline into its character.
 *  Never inside (or possibly inside, past len) a user-defined token, which any text matches.
 * A caller with a text of no cut at all (one huge line) must cut somewhere else, and accept
 * that the ids near that cut may differ from a whole encoding. */
size_t tok_stream_cut(const tok_vocab *v, const char *text, size_t len);

/* ---- decoding */
enum { TOK_DECODE_SKIP_SPECIAL = 1 }; /* CONTROL and UNKNOWN tokens decode to nothing */
/* The bytes one generated token prints, as llama.cpp's token_to_piece: a normal token its
 * text (SentencePiece: U+2581 as a space, no space removed), a byte token its byte, a
 * user-defined token its text as written; control and unknown tokens their text, or nothing
 * with TOK_DECODE_SKIP_SPECIAL (llama.cpp's special=false); unused ones nothing. *text points
 * into the vocabulary. BASE_EINVAL (and "") for an id outside it. */
int tok_token_piece(const tok_vocab *v, int32_t id, int flags, const char **text, size_t *len);
/* Decodes n ids into a malloc'd buffer *text (NUL-terminated for convenience; *len excludes
 * the NUL; caller frees). An id outside the vocabulary is BASE_EINVAL. For SentencePiece-style
 * vocabularies the space that encoding prefixed is removed again, so decode(encode(x)) == x. */
int tok_decode(const tok_vocab *v, const int32_t *ids, size_t n, int flags, char **text,
               size_t *len, base_err *e);

/* ---- training a byte-level BPE vocabulary
 * The text is split by the pre-tokenizer; unique pieces are counted; then, starting from the
 * 256 single bytes, the most frequent adjacent pair (within a piece) is merged repeatedly until
 * vocab_size tokens exist. Ties go to the pair with the smaller left id, then the smaller right
 * id, so the result depends only on the text (not on hashing or order of files). */
typedef struct tok_train_opts {
    int32_t vocab_size;          /* tokens wanted, specials included; >= 256 + n_specials */
    int pretok;                  /* TOK_PRETOK_GPT2 or TOK_PRETOK_CL100K */
    const char *const *specials; /* appended after the merges; the first is end-of-text */
    size_t n_specials;
    /* optional progress: stage "merge", done of total merges; NULL for none */
    void (*progress)(void *ctx, const char *stage, size_t done, size_t total);
    void *ctx;
} tok_train_opts;

typedef struct tok_trainer tok_trainer;
int tok_trainer_create(const tok_train_opts *o, tok_trainer **out, base_err *e);
/* Counts the pieces of one text (a file, a document). Occurrences of the specials' text are
 * cut out and not counted. */
int tok_trainer_add(tok_trainer *t, const char *text, size_t len, base_err *e);
/* Pieces counted so far: all and distinct. */
void tok_trainer_stats(const tok_trainer *t, uint64_t *pieces, uint64_t *unique);
/* Runs the merges and builds the vocabulary. If the text runs out of pairs first, the
 * vocabulary is smaller than asked (tok_vocab_size tells). The trainer may then be freed. */
int tok_trainer_finish(tok_trainer *t, tok_vocab **out, base_err *e);
void tok_trainer_free(tok_trainer *t); /* NULL is fine */
/* One call: create, add text, finish, free. */
int tok_train(const tok_train_opts *o, const char *text, size_t len, tok_vocab **out, base_err *e);

#endif
