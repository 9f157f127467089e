/* data/sft: fine-tuning data as users have it, tokenized into padded rows with a loss mask.
 *
 * Formats (by content):
 *  - JSONL, one example per line (blank lines skipped):
 *      {"messages": [{"role": "system"|"user"|"assistant", "content": "...", "weight": 0|1}, ...]}
 *        (OpenAI's fine-tuning format): rendered with the model's chat template (the encode
 *        callback), the loss on assistant tokens only: each assistant message's content and the
 *        token that ends its turn; "weight": 0 leaves that message out of the loss;
 *      {"prompt": "...", "completion": "..."}: the loss on the completion and the end-of-text
 *        token after it;
 *      {"text": "..."}: every token.
 *  - anything else: plain text (continued pretraining), cut into rows of seq + 1 tokens.
 * A malformed line is BASE_EFORMAT naming file:line and what is wrong.
 *
 * Rows: one example per row (padding; no row holds two examples, so nothing attends across an
 * example boundary). Row i has seq input tokens tok[i*seq ...] and seq targets tgt[i*seq ...]:
 * tgt[t] is the token after position t where that token is trained, -1 elsewhere (the prompt,
 * the padding). An example longer than seq + 1 tokens is cut to its first seq + 1 (counted in
 * n_truncated). */
#ifndef HEARTH_DATA_SFT_H
#define HEARTH_DATA_SFT_H

#include "base/base.h"
#include "tokenizer/tokenizer.h"

typedef struct data_msg {
    const char *role, *content;
    int weight; /* 1: trained (assistant), 0: not */
} data_msg;

/* Renders msgs (n) with the model's chat template and appends the ids to out (the generation
 * prompt after a last message that is not the assistant's; none after an assistant's). */
typedef int (*data_chat_encode_fn)(const data_msg *msgs, size_t n, tok_ids *out, void *user,
                                   base_err *e);

typedef struct data_sft_opts {
    tok_vocab *vocab;
    int seq;
    data_chat_encode_fn encode; /* NULL: data_sft_encode_plain */
    void *encode_user;
    int add_bos; /* prepend the vocabulary's BOS to text and prompt/completion examples */
} data_sft_opts;

typedef struct data_sft {
    int seq;
    size_t n; /* rows */
    int32_t *tok, *tgt;
    size_t n_examples, n_truncated, n_tokens, n_trained,
        n_untrainable; /* examples without a
                           trained token (dropped) */
} data_sft;

int data_sft_load(const char *path, const data_sft_opts *o, data_sft **out, base_err *e);
void data_sft_free(data_sft *d);
/* Moves the rows whose index hash (from seed) falls below frac into *val (a new set), keeping
 * the rest in d; at least one row stays in d. */
int data_sft_split(data_sft *d, double frac, uint64_t seed, data_sft **val, base_err *e);

/* A minimal chat rendering without a model template: "System: ", "User: ", "Assistant: "
 * prefixes, turns ended by a newline, the generation prompt "Assistant:" (hearth's template). */
int data_sft_encode_plain(const data_msg *msgs, size_t n, tok_ids *out, void *user, base_err *e);

#endif
