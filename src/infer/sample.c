/* infer/sample.c: choosing the next token from logits, with llama.cpp's samplers and their
 * order: repetition penalty, top-k, top-p, min-p, temperature, then a draw. The filters look
 * at the distribution before temperature (as llama.cpp's default chain does); temperature only
 * shapes the draw among the survivors. */
#include "infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void infer_sampling_default(infer_sampling *s) {
    memset(s, 0, sizeof *s);
    s->temperature = 0.8f;
    s->top_k = 40;
    s->top_p = 0.95f;
    s->min_p = 0.05f;
    s->repeat_penalty = 1.0f;
    s->repeat_last_n = 64;
    s->seed = 0;
    s->max_tokens = 0;
}

void infer_repeat_penalty(float *logits, int V, float penalty, const int32_t *recent,
                          int n_recent) {
    if (penalty == 1.0f || n_recent <= 0) return;
    /* Each distinct token once: a token repeated k times is still penalised once (llama.cpp's
     * repeat penalty; frequency and presence penalties are other things). */
    for (int i = 0; i < n_recent; i++) {
        int32_t t = recent[i];
        if (t < 0 || t >= V) continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = recent[j] == t;
        if (seen) continue;
        if (logits[t] > 0)
            logits[t] /= penalty;
        else
            logits[t] *= penalty;
    }
}

/* The penalty over the last repeat_last_n tokens of recent (-1: all of them). */
static void penalize(float *logits, int V, const infer_sampling *sp, const int32_t *recent,
                     int n_recent) {
    int last_n = sp->repeat_last_n < 0 ? n_recent : sp->repeat_last_n;
    if (last_n > n_recent) last_n = n_recent;
    infer_repeat_penalty(logits, V, sp->repeat_penalty, recent + (n_recent - last_n), last_n);
}

/* Candidate order: decreasing logit, ties by id. */
static int before(const float *lg, int i, int j) {
    return lg[i] > lg[j] || (lg[i] == lg[j] && i < j);
}

/* Heaps here keep the candidate that sorts LAST at the root. */
static void sift(int *a, int n, int root, const float *lg) {
    for (;;) {
        int c = 2 * root + 1;
        if (c >= n) return;
        if (c + 1 < n && before(lg, a[c], a[c + 1])) c++;
        if (before(lg, a[c], a[root])) return;
        int t = a[root];
        a[root] = a[c], a[c] = t;
        root = c;
    }
}

/* Heap sort of a[0..n) into candidate order: deterministic, in place, O(n log n). */
static void sort_desc(int *a, int n, const float *lg) {
    for (int i = n / 2 - 1; i >= 0; i--) sift(a, n, i, lg);
    for (int end = n - 1; end > 0; end--) {
        int t = a[0];
        a[0] = a[end], a[end] = t;
        sift(a, end, 0, lg);
    }
}

/* Keeps the k first (in candidate order) of idx[0..n) at the front, sorted; returns k. A heap
 * of the k best so far, whose root is the worst of them, then one sort of those k. */
static int keep_top_k(int *idx, int n, int k, const float *lg) {
    if (k <= 0 || k >= n) {
        sort_desc(idx, n, lg);
        return n;
    }
    for (int i = k / 2 - 1; i >= 0; i--) sift(idx, k, i, lg);
    for (int i = k; i < n; i++)
        if (before(lg, idx[i], idx[0])) {
            idx[0] = idx[i];
            sift(idx, k, 0, lg);
        }
    sort_desc(idx, k, lg);
    return k;
}

int infer_sample_candidates(float *logits, int V, const infer_sampling *sp, const int32_t *recent,
                            int n_recent, infer_sampler_scratch *s) {
    penalize(logits, V, sp, recent, n_recent);
    int *idx = s->idx;
    float *p = s->prob;
    for (int i = 0; i < V; i++) idx[i] = i;
    int filtered = sp->top_k > 0 || (sp->top_p > 0 && sp->top_p < 1) || sp->min_p > 0;
    /* Without a filter every token stays and no order is needed: the draw runs over ids. */
    int n = filtered ? keep_top_k(idx, V, sp->top_k, logits) : V;
    float mx = logits[idx[0]];
    if (!filtered)
        for (int i = 1; i < V; i++)
            if (logits[i] > mx) mx = logits[i];
    /* softmax of the survivors (before temperature) for top-p and min-p */
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (p[i] = expf(logits[idx[i]] - mx));
    if (sp->top_p > 0 && sp->top_p < 1) {
        /* the smallest prefix whose probability reaches top_p (at least one) */
        double cum = 0, want = sp->top_p * sum;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += p[i];
            if (cum >= want) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (sp->min_p > 0 && sp->min_p <= 1) {
        /* relative to the most likely token: p_i >= min_p * p_max, i.e. exp(l_i - l_max) >= min_p
         */
        int keep = 1;
        while (keep < n && p[keep] >= sp->min_p * p[0]) keep++;
        n = keep;
    }
    /* renormalise at the sampling temperature */
    float t = sp->temperature > 0 ? sp->temperature : 1.0f;
    sum = 0;
    for (int i = 0; i < n; i++) sum += (p[i] = expf((logits[idx[i]] - mx) / t));
    for (int i = 0; i < n; i++) p[i] = (float)(p[i] / sum);
    return n;
}

int32_t infer_sample(float *logits, int V, const infer_sampling *sp, const int32_t *recent,
                     int n_recent, base_rng *r, infer_sampler_scratch *s) {
    if (!(sp->temperature > 0)) {
        penalize(logits, V, sp, recent, n_recent);
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    int n = infer_sample_candidates(logits, V, sp, recent, n_recent, s);
    float u = base_rng_uniform(r), cum = 0;
    for (int i = 0; i < n; i++) {
        cum += s->prob[i];
        if (u < cum) return s->idx[i];
    }
    return s->idx[n - 1]; /* u within rounding of 1 */
}
