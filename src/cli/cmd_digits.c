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

static void help(void) {
    printf("usage: hearth digits [options]\n\n"
           "  --data PATH      digits.csv.gz (default: Debian python3-sklearn's copy)\n"
           "  --hidden A,B     widths of the two hidden layers (default 4,4)\n"
           "  --steps N        full-batch AdamW steps (default 600)\n"
           "  --lr X           learning rate (default 0.03)\n"
           "  --test-frac X    fraction held out for the test (default 0.25)\n"
           "  --seed S         seed of the split and the initialisation (default 1)\n");
}

int cli_digits(int argc, char **argv) {
    const char *path = DIGITS_PATH;
    long h1 = 4, h2 = 4, steps = 600, seed = 1;
    double lr = 0.03, test_frac = 0.25;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return 0;
        }
        if (!(val = cli_value(argc, argv, &i))) return 2;
        if (!strcmp(a, "--data"))
            path = val;
        else if (!strcmp(a, "--steps")) {
            if (cli_int(a, val, 1, 1000000, &steps)) return 2;
        } else if (!strcmp(a, "--seed")) {
            if (cli_int(a, val, 0, 1L << 62, &seed)) return 2;
        } else if (!strcmp(a, "--lr")) {
            if (cli_float(a, val, 1e-9, 10, &lr)) return 2;
        } else if (!strcmp(a, "--test-frac")) {
            if (cli_float(a, val, 0.05, 0.95, &test_frac)) return 2;
        } else if (!strcmp(a, "--hidden")) {
            char *end;
            h1 = strtol(val, &end, 10);
            if (*end != ',' || h1 < 1 || h1 > 4096 || (h2 = strtol(end + 1, &end, 10)) < 1 ||
                h2 > 4096 || *end) {
                fprintf(stderr, "hearth: --hidden must be two widths like 4,4, got '%s'\n", val);
                return 2;
            }
        } else {
            fprintf(stderr, "hearth digits: unknown option '%s' (see --help)\n", a);
            return 2;
        }
    }
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
