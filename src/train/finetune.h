/* train/finetune: `hearth finetune` — a downloaded model refined on the user's data, with LoRA
 * adapters (the base frozen) or every weight (--full). It runs through train's loop (train_exec,
 * train_int.h), so it has everything `hearth train` has: the schedule, clipping, accumulation,
 * evals, background checkpoints RUN/step_NNNNNNNN (ckpt.h; the newest good one resumed
 * bit-exactly on a rerun of the same command, or --resume PATH), keep-last/keep-every,
 * metrics.jsonl, loss.svg, the progress with its ETA, data parallelism under mpirun (N ranks
 * equal one process with N x accum, bit for bit). Its run directory holds a lock, finetune.json
 * (the settings, compared on a rerun), and at the end the result: RUN/adapter.gguf (llama.cpp's
 * LoRA adapter format) and RUN/adapter/ (PEFT: adapter_model.safetensors, adapter_config.json;
 * Llama family) for LoRA, RUN/model.gguf (F32, with the base's tokenizer) for --full.
 *
 * The base: a GGUF file (F32, F16, BF16 or any quantized type src/quant reads). With LoRA a
 * base not in F32 stays in its stored type, mapped, each matrix dequantized just before its
 * product (QLoRA: ft_load_base's FT_BASE_STORED, ckpt_gguf_wsrc); --full loads it in F32. Data: a
 * file data/sft.h reads, tokenized with the base's own vocabulary; chat examples rendered by
 * the caller's template callback. A checkpoint holds only what is trained (the adapters, or
 * every weight with --full) and its AdamW moments. */
#ifndef HEARTH_TRAIN_FINETUNE_H
#define HEARTH_TRAIN_FINETUNE_H

#include "data/sft.h"
#include "train/train.h"

/* Renders a chat (as data_chat_encode_fn) for the base's vocabulary and family. */
typedef int (*ft_chat_fn)(const data_msg *msgs, size_t n, tok_vocab *v, nn_family family,
                          tok_ids *out, void *user, base_err *e);

typedef struct ft_opts {
    /* the run: data, out_dir, batch, seq, steps, accum, eval_every, eval_batches, warmup, lr,
     * min_lr, weight_decay, clip, seed, threads, sample_tokens, ckpt_every, ckpt_every_min,
     * keep_last, keep_every, resume, stop, note, dist, zero, overlap, bucket_mb (cfg is the
     * base's) */
    train_opts t;
    const char *base;
    const char *val; /* held-out file; NULL: val_frac of the data's rows */
    float val_frac;
    int full; /* train every weight; otherwise LoRA */
    int lora_rank;
    float lora_alpha, lora_dropout;
    unsigned lora_targets;
    ft_chat_fn chat; /* NULL: data_sft_encode_plain */
    void *chat_user;
    const char *chat_template; /* kept in the model --full writes (the base's); NULL: none */
} ft_opts;

/* Defaults: train_opts_default's, then lr 2e-4, weight decay 0, eval every 0, sample 0,
 * val_frac 0.1, LoRA rank 8, alpha 16, dropout 0.05, targets q,k,v,o. */
void ft_opts_default(ft_opts *o);

typedef struct ft_result {
    train_result run; /* the loop's: step, stopped, complete, first_val / last_val (the held-out
                         loss before the first step and at the last eval), sample, fatal and
                         the data-parallel figures */
    size_t n_train, n_val, n_truncated, n_untrainable, n_trainable_params;
    int peft; /* adapter/ (PEFT) was written (LoRA on a Llama-family base) */
} ft_result;

int ft_run(const ft_opts *o, train_report_fn report, void *user, ft_result *res, base_err *e);

/* How ft_load_base keeps the base's weights. */
enum {
    FT_BASE_TRAIN = 0,  /* F32 in params, with a gradient buffer (--full) */
    FT_BASE_F32 = 1,    /* F32 in params, frozen: no gradient buffer (merging an adapter) */
    FT_BASE_STORED = 2, /* frozen, the large matrices left in the file's stored type and
                         * dequantized per product (QLoRA: ckpt_gguf_wsrc); an F32 file as
                         * FT_BASE_F32 */
};
/* Loads a base model (GGUF) for batches (B, T), its weights kept as mode (FT_BASE_*) says;
 * *vocab gets its tokenizer (vocab NULL-able). */
int ft_load_base(const char *path, int B, int T, int mode, nn_model **m, tok_vocab **vocab,
                 base_err *e);

#endif
