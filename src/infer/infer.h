/* infer/infer.h: the inference engine — a loaded model with its tokenizer, KV-cache generation,
 * sampling, and the continuous-batching scheduler the server drives. */
#ifndef HEARTH_INFER_H
#define HEARTH_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "nn/nn.h"
#include "tokenizer/tokenizer.h"

/* ---- model ---------------------------------------------------------------------------------- */

typedef struct infer_model infer_model;

/* Loads a run directory (its newest checkpoint whose manifest verifies), a checkpoint directory,
 * or an exported .safetensors model. tokenizer: an .htok (or GGUF) path, or NULL to use the one
 * stored with the model: RUN/tokenizer.htok, or the exported FILE's stem + ".htok"; a model of
 * vocabulary 256 without one is byte-level (the 256 single bytes). Only the parameters are kept.
 * Config mismatches, missing tensors and bad shapes are BASE_EFORMAT naming what is wrong. */
int infer_model_load(infer_model **out, const char *path, const char *tokenizer, base_err *e);
void infer_model_free(infer_model *m); /* NULL is fine */
const nn_config *infer_model_config(const infer_model *m);
/* The model's tokenizer; lives until infer_model_free. tok_encode uses scratch space inside it, so
 * callers on several threads must serialize encoding (or load their own handle with tok_load);
 * the scheduler only calls the const queries (tok_token_text, tok_token_type). */
tok_vocab *infer_model_vocab(const infer_model *m);
/* The file stem: a run directory's base name, an exported FILE.gguf's FILE */
const char *infer_model_name(const infer_model *m);
/* A GGUF's tokenizer.chat_template (Jinja text; lives until infer_model_free), or NULL. */
const char *infer_model_chat_template(const infer_model *m);
/* NN_GPT2 or NN_LLAMA: picks the chat template */
nn_family infer_model_family(const infer_model *m);

/* ---- prompts -------------------------------------------------------------------------------- */

/* The one function that turns a prompt into tokens (`hearth generate`, `hearth chat`, the
 * server's completions and chat completions): APPENDS the ids of text (a raw prompt, or a chat
 * rendered by its template) to *out. Special-token text ("<|im_start|>", "</s>") becomes its
 * token, as llama.cpp's llama-cli and llama-server parse it. A GGUF model's prompt gets BOS and
 * EOS as its file says (tok_add_bos / tok_add_eos: llama_tokenize's add_special); a
 * hearth-trained model's starts as its training documents did: with BOS, or the end-of-text
 * token where the vocabulary has no BOS. An empty prompt is that start token alone. Uses the
 * vocabulary's scratch space: callers on several threads serialize (see infer_model_vocab). */
int infer_prompt_encode(infer_model *m, const char *text, size_t len, tok_ids *out, base_err *e);
/* The same rules without a loaded model: hearth_native 1 for a hearth-trained model's
 * vocabulary, 0 for a GGUF file's (what `hearth finetune` encodes its examples with, so that
 * they are the prompts the tuned GGUF will be served). */
int infer_prompt_encode_vocab(tok_vocab *v, int hearth_native, const char *text, size_t len,
                              tok_ids *out, base_err *e);

/* ---- sampling ------------------------------------------------------------------------------- */

#define INFER_MAX_STOP 5 /* the OpenAI API's 4, and the end of turn a chat template adds */

typedef struct {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off (llama.cpp's: divides positive logits, multiplies negative) */
    int repeat_last_n; /* window of the penalty (prompt included); default 64, -1: all, 0: none */
    uint64_t seed;     /* same seed, same prompt, same settings -> same text */
    int max_tokens;    /* generated tokens at most; 0: until the context is full */
    int n_stop;
    const char *stop[INFER_MAX_STOP]; /* stop sequences; the matched text is not emitted */
} infer_sampling;

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05, repeat_penalty 1,
 * repeat_last_n 64, seed 0, max_tokens 0, no stop. */
void infer_sampling_default(infer_sampling *s);

/* ---- LoRA adapters at serve time ----------------------------------------------------------- */

/* A llama.cpp LoRA adapter GGUF (general.type "adapter", adapter.type "lora", optional
 * adapter.lora.alpha; tensors blk.N.<matrix>.weight.lora_a, dims [in, r], and .lora_b, dims
 * [r, out], for the matrices attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, ffn_up,
 * ffn_down) applied on top of a model's weights, unmerged, as llama.cpp applies one: each
 * adapted product becomes y = W x + s * B (A x), s = scale * alpha / r (scale alone when the
 * file has no alpha). The base weights stay as they are (typed, mapped): several adapters serve
 * over one base, and each sequence of a batch uses its own (or none). */
typedef struct infer_lora infer_lora;

/* Reads the adapter at path for m: every tensor is checked against the matrix of m it adapts
 * (the architecture, the name, a lora_a for every lora_b, the shapes, a type hearth reads) and
 * refused by its name before anything is used. The matrices are widened to F32 (an adapter is
 * small); q and k rows are put into the engine's RoPE order as the model's are. scale: the
 * user's multiplier (llama.cpp's --lora-scaled; 1 for --lora), finite. *out is read-only once
 * loaded (engines on several threads may share it) and lives until infer_lora_free, which comes
 * after every engine or scheduler using it is freed, and before m is. */
int infer_lora_load(infer_lora **out, const infer_model *m, const char *path, float scale,
                    base_err *e);
void infer_lora_free(infer_lora *a); /* NULL is fine */
/* The largest rank of its matrices, alpha (0: none in the file), the matrices adapted, and the
 * bytes of its F32 matrices. */
void infer_lora_info(const infer_lora *a, int *rank, float *alpha, int *n_mats, size_t *bytes);

/* ---- scheduler (continuous batching) -------------------------------------------------------- */

/* The KV cache's element type: F16 (the default: half the memory, what llama.cpp keeps) or F32. */
typedef enum { INFER_KV_F16 = 0, INFER_KV_F32 = 1 } infer_kv_type;

typedef struct {
    int n_slots;           /* concurrent sequences in the running batch */
    int ctx;               /* context per slot (tokens); <= the model's max_seq;
                            * 0: max_seq, at most INFER_DEFAULT_CTX */
    int max_queue;         /* waiting requests beyond the slots; a full queue refuses */
    int prefill_chunk;     /* prompt tokens prefilled per step per sequence */
    int threads;           /* compute threads */
    int max_rows;          /* rows one step computes at most: every decoding sequence's row, then
                              prompt chunks, oldest request first, while they fit (bounds a step's
                              time, so running streams keep flowing while long prompts are read).
                              0: n_slots * prefill_chunk (no limit); else at least n_slots */
    infer_kv_type kv_type; /* the KV cache's elements (0: F16) */
} infer_sched_opts;

/* The default context per slot when none is asked for: a model trained for 128K positions
 * does not reserve 128K per slot unless told to. */
#define INFER_DEFAULT_CTX 4096

typedef enum { INFER_EV_TEXT, INFER_EV_DONE } infer_ev_kind;

typedef enum {
    INFER_FINISH_STOP,      /* an end-of-generation token (tok_is_eog: eos, <|eot_id|>,
                             * <|im_end|>, ...; never emitted as text) or a stop sequence */
    INFER_FINISH_LENGTH,    /* max_tokens or the context is full */
    INFER_FINISH_CANCELLED, /* the client went away or cancelled */
    INFER_FINISH_ERROR
} infer_finish;

typedef struct {
    infer_ev_kind kind;
    const char *text; /* TEXT: new UTF-8 text (complete characters, stop sequences held back) */
    size_t len;
    /* DONE: */
    infer_finish finish;
    int prompt_tokens, completion_tokens;
    double queue_s, ttft_s, total_s; /* seconds: waiting for a slot, to the first token, overall */
    const char *error; /* ERROR: what failed (e.g. the forward's message); valid during the call */
} infer_event;

/* Called on the scheduler's thread, without its lock held (it may call infer_sched_submit or
 * infer_sched_cancel, never infer_sched_free); must not block for long: every sequence waits.
 * Returning nonzero cancels the request (its slot is freed before the next step). A DONE event is
 * always the last one. TEXT pointers are valid during the call only. */
typedef int (*infer_event_fn)(void *ud, const infer_event *ev);

typedef struct infer_sched infer_sched;

int infer_sched_create(infer_sched **out, infer_model *m, const infer_sched_opts *o, base_err *e);
void infer_sched_free(infer_sched *s); /* finishes every request as cancelled, joins the thread */

/* Queues a request of n prompt tokens. BASE_EINVAL if the prompt does not fit the context
 * (message states both counts); INFER_EFULL if the queue is full. *id names it for cancel.
 * lora: the adapter its rows use (loaded for the scheduler's model; it must outlive the
 * request), or NULL for the base alone. */
#define INFER_EFULL (-100)
int infer_sched_submit(infer_sched *s, const int32_t *prompt, size_t n, const infer_sampling *sp,
                       const infer_lora *lora, infer_event_fn fn, void *ud, uint64_t *id,
                       base_err *e);
void infer_sched_cancel(infer_sched *s, uint64_t id); /* unknown or finished ids are ignored */

typedef struct {
    int busy_slots, queued;
} infer_sched_stats;
void infer_sched_get_stats(infer_sched *s, infer_sched_stats *st);

/* ---- engine internals: the batched forward and the sampler, for the scheduler, the tests and
 * `hearth generate`'s measurements. ------------------------------------------------------------ */

/* The weights as the engine computes with them. Every matrix stays in the type it is stored in
 * (a ggml type id of quant.h: F32, F16, BF16, Q8_0, ..., Q6_K), read-only: a GGUF file's tensors
 * are views into its memory mapping (never copied or widened), a run's, checkpoint's or
 * safetensors file's are F32 views into the nn_model parameters the loader read. Norm weights
 * and biases are small F32 copies (or views). Products go through quant_matmul. */
typedef struct infer_mat {
    const void *data; /* rows back to back, row_bytes each */
    int type;         /* ggml type id (QUANT_F32, QUANT_Q4_K, ...) */
    int rows, cols;   /* W (rows, cols): y (rows) = W x (cols) */
    size_t row_bytes;
} infer_mat;

/* A linear layer whose outputs are the outputs of up to three matrices side by side, plus a
 * bias: Llama's q, k and v (or gate and up) as GGUF stores them, separately, or one fused
 * matrix (hearth's qkvw, GPT-2's attn_qkv). rope_heads[i] > 0: w[i]'s rows are in llama.cpp's
 * RoPE order (adjacent pairs, a GGUF file's q and k), turned back into hearth's (halves) for
 * that many heads as the outputs are stored; the bias is in w's row order. */
#define INFER_MAX_PARTS 3
typedef struct infer_linear {
    int n;                        /* matrices, 1..INFER_MAX_PARTS */
    infer_mat w[INFER_MAX_PARTS]; /* all with the same cols */
    int rope_heads[INFER_MAX_PARTS];
    const float *b; /* (out) or NULL */
    int out;        /* the rows of all matrices */
} infer_linear;

typedef struct infer_layer {
    const float *ln1w, *ln1b, *ln2w, *ln2b; /* (C); the b's NULL without biases */
    const float *post_att, *post_ffn;       /* (C): Gemma 2's norms of the attention and FFN outputs
                                             * before their residual adds; NULL in other families */
    infer_linear qkv;                       /* (NH + 2 NKV) HS outputs: q | k | v */
    infer_linear attproj;                   /* C */
    infer_linear fc;                        /* F (GELU) or 2F (SwiGLU: gate | up) */
    infer_linear fcproj;                    /* C */
} infer_layer;

/* What a model family changes in the forward, beyond nn_config (arch.c fills it from the
 * family table and the file's hyperparameters). */
typedef enum {
    INFER_ACT_GELU,   /* GPT-2: gelu(fc) */
    INFER_ACT_SWIGLU, /* Llama, Qwen2, Phi-3: silu(gate) * up */
    INFER_ACT_GEGLU   /* Gemma 2: gelu_tanh(gate) * up, ggml's F16-rounded GELU */
} infer_act;

typedef struct infer_hparams {
    const char *arch;       /* the family's name: gpt2, llama, qwen2, phi3, gemma2 */
    int head_dim;           /* HS: C / NH, or the file's attention.key_length (Gemma 2) */
    int rope;               /* rotary positions (else learned ones, GPT-2) */
    infer_act act;          /* the FFN's activation */
    float emb_scale;        /* the embedding row is multiplied by this (Gemma 2: sqrt(C)); 0: not */
    float att_scale;        /* q.k is multiplied by this (1/sqrt(HS) unless the family says else) */
    int q_prescale;         /* q is scaled before the product, as llama.cpp's Phi-3 and Gemma 2 */
    float att_softcap;      /* scores become cap * tanh(s / cap) (Gemma 2); 0: not */
    float final_softcap;    /* the logits likewise */
    int swa;                /* sliding window: a row attends to the last swa positions; 0: all */
    int swa_every_other;    /* the window holds on even layers only (Gemma 2); else on all */
    float rope_freq_scale;  /* positions times this (1/rope.scaling.factor, linear) */
    float rope_attn_factor; /* cos and sin times this (rope.scaling.attn_factor; 1) */
    const float *rope_factors; /* (HS/2): each frequency divided by its factor (Llama 3.1's
                                * rope_freqs, Phi-3's long factors), or NULL */
    const float *rope_short;   /* (HS/2): Phi-3's factors for contexts up to rope_orig_ctx */
    int rope_orig_ctx;         /* rope.scaling.original_context_length (0: none) */
} infer_hparams;

typedef struct infer_weights {
    nn_config cfg;
    infer_hparams hp;
    infer_mat wte;            /* (V, C): one row dequantized per token */
    const float *wpe;         /* (maxT, C) or NULL (Llama) */
    infer_layer *layers;      /* (L) */
    const float *lnfw, *lnfb; /* (C) */
    infer_mat head;           /* (V, C): the output matrix, or wte when tied */
    int rope_ggml; /* RoPE angles as llama.cpp computes them (a GGUF file's model): pos times a
                    * float ratio raised by repeated multiplication, not hearth's double pow */
} infer_weights;

/* The weights (they live until infer_model_free). */
const infer_weights *infer_model_weights(const infer_model *m);
/* The F32 parameters in hearth's training layout, for a model loaded from a run, a checkpoint
 * or a safetensors file (what `hearth export` writes out); NULL for a GGUF file's model, whose
 * weights are only its typed, mapped tensors. */
const nn_model *infer_model_nn(const infer_model *m);
/* Where the weights came from: the checkpoint directory or the file. */
const char *infer_model_source(const infer_model *m);
/* Bytes of the weights: mapped from the file (GGUF) and allocated (F32 parameters, norms,
 * biases). */
void infer_model_bytes(const infer_model *m, size_t *mapped, size_t *allocated);

/* A KV cache of n_slots sequences of ctx positions each, plus the scratch of a forward of up to
 * max_rows rows. Memory: 2 * L * n_slots * ctx * NKV * HS elements for the cache, halves
 * (INFER_KV_F16, the default, as llama.cpp's) or floats. */
typedef struct infer_engine infer_engine;
int infer_engine_create(infer_engine **out, const infer_model *m, int n_slots, int ctx,
                        int max_rows, infer_kv_type kv_type, base_err *e);
void infer_engine_free(infer_engine *g); /* NULL is fine */

/* The adapter the rows of slot's sequence use from the next forward on (loaded for the engine's
 * model; BASE_EINVAL otherwise), or NULL for the base alone: every slot starts without one. In
 * a forward, the low-rank products run once per adapter over the rows that use it; each row's
 * result is what it would be alone. */
int infer_engine_set_lora(infer_engine *g, int slot, const infer_lora *a, base_err *e);

/* One forward over a ragged batch of n rows: row i is token tokens[i] of the sequence in slot
 * slots[i] at position pos[i]. Its key and value enter the slot's cache at pos[i], and it attends
 * to that slot's positions 0..pos[i] (earlier rows of the same call included, so a sequence's
 * rows must come in increasing position). Each linear layer is one matrix product over the rows.
 * The first n_decode rows are decode rows (a sequence's last sampled token) and the rest prompt
 * rows: decode rows go through a product that reads each weight once without packing it (fast
 * for few rows), prompt rows through sgemm; either way a row's result does not depend on what
 * else is in the batch, so a sequence decodes to the same tokens batched or alone, as long as
 * its prompt rows are always passed as prompt rows and its decode rows as decode rows.
 * logits (n_out, V) get the logits of rows out_rows[0..n_out); decode rows first. */
int infer_forward(infer_engine *g, const int32_t *tokens, const int *slots, const int *pos, int n,
                  int n_decode, const int *out_rows, int n_out, float *logits, base_err *e);

/* Sampling of one token from logits (V), modified in place. recent: the sequence so far (prompt
 * included), of which the last sp->repeat_last_n get the repetition penalty. Filters run in
 * llama.cpp's order: repetition penalty, top-k, top-p, min-p, then temperature and a draw from r.
 * temperature <= 0: the argmax (after the penalty). scratch: V ints and V floats
 * (infer_sampler_scratch). */
typedef struct infer_sampler_scratch {
    int *idx;
    float *prob;
} infer_sampler_scratch;
int32_t infer_sample(float *logits, int V, const infer_sampling *sp, const int32_t *recent,
                     int n_recent, base_rng *r, infer_sampler_scratch *s);
/* The candidates left after the penalty, top-k, top-p and min-p: their ids (sorted by
 * decreasing logit, ties by id; in id order when no filter is on) into s->idx and their
 * renormalised probabilities at the sampling temperature into s->prob; returns how many. */
int infer_sample_candidates(float *logits, int V, const infer_sampling *sp, const int32_t *recent,
                            int n_recent, infer_sampler_scratch *s);
/* llama.cpp's repetition penalty on logits (V): each distinct token of recent once. */
void infer_repeat_penalty(float *logits, int V, float penalty, const int32_t *recent, int n_recent);

/* The text of one sequence (text.c): token bytes in, complete UTF-8 characters out (invalid
 * bytes become U+FFFD), the tail that may still turn into a stop sequence held back. Empty stop
 * strings are ignored. The stop strings are not copied: they must outlive t. */
typedef struct infer_text {
    char *buf; /* all the text so far (valid UTF-8) */
    size_t len, cap, emitted;
    unsigned char pend[4]; /* an incomplete character */
    int npend;
    const char *stop[INFER_MAX_STOP];
    int n_stop;
} infer_text;
void infer_text_init(infer_text *t, const char *const *stop, int n_stop);
void infer_text_free(infer_text *t);
/* Adds a token's bytes. *out, *out_len: the text now safe to emit (pointer valid until the next
 * call). *stopped: a stop sequence matched (what preceded it is in *out; nothing follows). */
int infer_text_push(infer_text *t, const char *bytes, size_t n, const char **out, size_t *out_len,
                    int *stopped);
/* The end of the sequence: what was held back (an incomplete character as U+FFFD). */
int infer_text_flush(infer_text *t, const char **out, size_t *out_len);

#endif
