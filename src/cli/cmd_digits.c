/* cli/cmd_digits.c: `hearth digits` — neural network 101. A multilayer perceptron with two
 * hidden layers learns to tell the handwritten digits 2, 4, 6 and 8 apart (8x8 pixels,
 * scikit-learn's copy of the UCI set), trained by backprop with the transformer's kernels
 * and optimizer, and is scored on a held-out test split. */
#include "cli.h"

#include "data/data.h"
#include "nn/nn.h"
#include "optim/optim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIGITS_PATH "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"

static const int classes[4] = {2, 4, 6, 8};

/* --hidden A,B: the widths of the two hidden layers. */
static int parse_hidden(void *ud, const cli_opt *o, const char *val) {
    long *h = ud;
    char *end;
    h[0] = strtol(val, &end, 10);
    if (*end != ',' || h[0] < 1 || h[0] > 4096 || (h[1] = strtol(end + 1, &end, 10)) < 1 ||
        h[1] > 4096 || *end) {
        fprintf(stderr,
                "hearth digits: --hidden must be two widths in [1, 4096] like 4,4, got "
                "'%s'\n",
                val);
        return -1;
    }
    return 0;
}

int cli_digits(int argc, char **argv) {
    const char *path = DIGITS_PATH;
    long steps = 600, seed = 1;
    double lr = 0.03, test_frac = 0.25;
    long hidden[2] = {4, 4};
    const cli_opt opts[] = {
        CLI_OPT_STR("data", 0, &path, "PATH",
                    "digits.csv.gz (default: Debian python3-sklearn's copy)"),
        CLI_OPT_CALL("hidden", 0, parse_hidden, hidden, "A,B",
                     "widths of the two hidden layers (default 4,4)"),
        CLI_OPT_INT("steps", 0, &steps, 1, 1000000, "N", "full-batch AdamW steps (default 600)"),
        CLI_OPT_FLOAT("lr", 0, &lr, 1e-9, 10, "X", "learning rate (default 0.03)"),
        CLI_OPT_FLOAT("test-frac", 0, &test_frac, 0.05, 0.95, "X",
                      "fraction held out for the test (default 0.25)"),
        CLI_OPT_INT("seed", 0, &seed, 0, 1L << 62, "S",
                    "seed of the split and the initialisation (default 1)"),
        CLI_OPT_END};
    const cli_cmd cmd = {.name = "digits", .usage = "usage: hearth digits [options]", .opts = opts};
    int npos, st = cli_parse(&cmd, argc, argv, &npos);
    if (st >= 0) return st;
    if (npos > 0) return cli_usage_error(&cmd, "unexpected argument '%s'", argv[1]);
    long h1 = hidden[0], h2 = hidden[1];
    float *x;
    int *y, n;
    base_err e = {0};
    if (data_load_digits(path, &x, &y, &n, &e)) {
        fprintf(stderr, "hearth digits: %s\n", e.msg);
        if (!strcmp(path, DIGITS_PATH))
            fprintf(stderr, "  (install it with: apt-get install python3-sklearn)\n");
        return 1;
    }
    /* keep the four classes, relabelled 0..3, then shuffle and split */
    int m = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 4; c++)
            if (y[i] == classes[c]) {
                memmove(x + (size_t)m * 64, x + (size_t)i * 64, 64 * sizeof(float));
                y[m++] = c;
            }
    base_rng r;
    base_rng_seed(&r, (uint64_t)seed);
    for (int i = m - 1; i > 0; i--) {
        int j = (int)base_rng_below(&r, (uint64_t)i + 1), t = y[i];
        float tmp[64];
        memcpy(tmp, x + (size_t)i * 64, sizeof tmp);
        memcpy(x + (size_t)i * 64, x + (size_t)j * 64, sizeof tmp);
        memcpy(x + (size_t)j * 64, tmp, sizeof tmp);
        y[i] = y[j], y[j] = t;
    }
    int n_test = (int)(m * test_frac), n_train = m - n_test;
    int sizes[4] = {64, (int)h1, (int)h2, 4};
    nn_mlp *net;
    optim_adamw opt;
    if (n_train < 1 || n_test < 1 || nn_mlp_create(&net, sizes, 3, n_train, &e) ||
        optim_adamw_create(&opt, net->n_params, &e)) {
        fprintf(stderr, "hearth digits: %s\n",
                n_train < 1 || n_test < 1 ? "too few samples" : e.msg);
        free(x), free(y);
        return 1;
    }
    opt.weight_decay = 0;
    nn_mlp_init(net, (uint64_t)seed);
    printf("digits 2, 4, 6, 8 from %s\n%d training and %d test images\n", path, n_train, n_test);
    printf("network: 64 inputs -> %ld GELU -> %ld GELU -> 4 classes, %zu parameters\n", h1, h2,
           net->n_params);
    float loss = 0;
    for (long s = 0; s < steps; s++) {
        loss = nn_mlp_forward(net, x, y, n_train);
        memset(net->grads, 0, net->n_params * sizeof(float));
        nn_mlp_backward(net);
        optim_adamw_step(&opt, net->params, net->grads, net->tensors, net->n_tensors,
                         optim_lr_at(s, steps / 20, steps, (float)lr, (float)lr / 10));
        if ((s + 1) % (steps / 6 > 0 ? steps / 6 : 1) == 0 || s + 1 == steps)
            printf("step %ld/%ld  train loss %.4f\n", s + 1, steps, (double)loss);
    }
    /* score the held-out images (n_test <= n_train rows fit the network's batch) */
    int correct = 0, confusion[4][4] = {{0}};
    const float *xt = x + (size_t)n_train * 64;
    const int *yt = y + n_train;
    nn_mlp_forward(net, xt, NULL, n_test);
    for (int i = 0; i < n_test; i++) {
        int p = nn_mlp_argmax(net, i);
        correct += p == yt[i];
        confusion[yt[i]][p]++;
    }
    printf("confusion (rows: true digit, columns: predicted)\n      2    4    6    8\n");
    for (int c = 0; c < 4; c++)
        printf("%d %4d %4d %4d %4d\n", classes[c], confusion[c][0], confusion[c][1],
               confusion[c][2], confusion[c][3]);
    printf("test accuracy: %.2f%% (%d of %d)\n", 100.0 * correct / n_test, correct, n_test);
    optim_adamw_free(&opt);
    nn_mlp_free(net);
    free(x), free(y);
    return 0;
}
