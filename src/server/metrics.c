/* server/metrics.c: the /metrics exposition (Prometheus text format 0.0.4) — latency
 * histograms, token and request counters, slot and queue gauges. Bucket bounds follow vLLM's
 * where they overlap, with finer ones below 10 ms because small CPU models are that fast. */
#include "server/server.h"

#include <string.h>

static const double le_ttft[] = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,  0.25,
                                 0.5,   0.75,   1.0,   2.5,  5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
static const double le_itl[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
                                0.2,    0.3,   0.4,    0.5,   0.75, 1.0,   2.5,  5.0,   10.0};
static const double le_e2e[] = {0.01, 0.025, 0.05, 0.1,  0.3,  0.5,  0.8,  1.0,  1.5,  2.0,
                                2.5,  5.0,   10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0};

void server_hist_init(server_hist *h, const double *le, int n) {
    BASE_ASSERT(n > 0 && n < SERVER_HIST_MAX);
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n;
}

void server_hist_observe(server_hist *h, double v) {
    if (!(v >= 0)) v = 0; /* NaN or a clock step backwards: count it in the first bucket */
    int i = 0;
    while (i < h->n && v > h->le[i]) i++;
    h->counts[i]++;
    h->count++;
    h->sum += v;
}

void server_hist_text(const server_hist *h, const char *name, const char *help, base_buf *out) {
    base_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += h->counts[i];
        base_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->le[i],
                        (unsigned long long)cum);
    }
    base_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
                    (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

void server_metrics_init(server_metrics *m) {
    memset(m, 0, sizeof *m);
    server_hist_init(&m->ttft, le_ttft, NELEM(le_ttft));
    server_hist_init(&m->itl, le_itl, NELEM(le_itl));
    server_hist_init(&m->e2e, le_e2e, NELEM(le_e2e));
    server_hist_init(&m->queue, le_ttft, NELEM(le_ttft));
}

void server_metrics_text(const server_metrics *m, int busy_slots, int queued, int n_slots,
                         base_buf *out) {
    server_hist_text(&m->ttft, "hearth_time_to_first_token_seconds",
                     "Time from a request's submission to the scheduler to its first token.", out);
    server_hist_text(&m->itl, "hearth_inter_token_latency_seconds",
                     "Time between consecutive streamed pieces of text of one request.", out);
    server_hist_text(&m->e2e, "hearth_e2e_request_latency_seconds",
                     "Time from a request's arrival (body read) to its last token.", out);
    server_hist_text(&m->queue, "hearth_queue_wait_seconds",
                     "Time a request waited for a free slot.", out);
    base_buf_printf(out,
                    "# HELP hearth_prompt_tokens_total Prompt tokens of finished requests.\n"
                    "# TYPE hearth_prompt_tokens_total counter\nhearth_prompt_tokens_total %llu\n"
                    "# HELP hearth_generation_tokens_total Tokens generated.\n"
                    "# TYPE hearth_generation_tokens_total counter\n"
                    "hearth_generation_tokens_total %llu\n",
                    (unsigned long long)m->prompt_tokens, (unsigned long long)m->generation_tokens);
    base_buf_printf(out, "# HELP hearth_requests_total HTTP requests answered, by status code.\n"
                         "# TYPE hearth_requests_total counter\n");
    for (int c = 0; c < NELEM(m->requests); c++)
        if (m->requests[c])
            base_buf_printf(out, "hearth_requests_total{code=\"%d\"} %llu\n", c,
                            (unsigned long long)m->requests[c]);
    base_buf_printf(out,
                    "# HELP hearth_slots_busy Sequences in the running batch.\n"
                    "# TYPE hearth_slots_busy gauge\nhearth_slots_busy %d\n"
                    "# HELP hearth_slots_total Slots of the running batch.\n"
                    "# TYPE hearth_slots_total gauge\nhearth_slots_total %d\n"
                    "# HELP hearth_queue_depth Requests waiting for a slot.\n"
                    "# TYPE hearth_queue_depth gauge\nhearth_queue_depth %d\n",
                    busy_slots, n_slots, queued);
}
