/* nn/mlp.c: a multilayer perceptron on the transformer's kernels: matmul (sgemm), GELU,
 * softmax cross-entropy. Parameters, gradients and activations in one allocation each. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const mlp_names[] = {"w0", "b0", "w1", "b1", "w2", "b2", "w3", "b3",
                                        "w4", "b4", "w5", "b5", "w6", "b6", "w7", "b7"};

int nn_mlp_create(nn_mlp **out, const int *sizes, int n_layers, int B, base_err *e) {
    *out = NULL;
    if (n_layers < 1 || n_layers > NN_MLP_MAX_LAYERS)
        return base_fail(e, BASE_EINVAL, "an MLP has 1 to %d layers, got %d", NN_MLP_MAX_LAYERS,
                         n_layers);
    if (B < 1) return base_fail(e, BASE_EINVAL, "batch size must be positive");
    for (int l = 0; l <= n_layers; l++)
        if (sizes[l] < 1 || sizes[l] > 1 << 20)
            return base_fail(e, BASE_EINVAL, "layer width %d is out of range", sizes[l]);
    nn_mlp *m = calloc(1, sizeof *m);
    if (!m) return base_fail(e, BASE_ENOMEM, "out of memory");
    m->n_layers = n_layers;
    m->B = B;
    memcpy(m->sizes, sizes, (size_t)(n_layers + 1) * sizeof(int));
    size_t np = 0, na = 0;
    for (int l = 0; l < n_layers; l++) {
        size_t in = (size_t)sizes[l], o = (size_t)sizes[l + 1];
        m->tensors[m->n_tensors++] =
            (nn_tensor){mlp_names[2 * l], 2, {(int)o, (int)in, 0}, np, o * in, 1};
        np += o * in;
        m->tensors[m->n_tensors++] = (nn_tensor){mlp_names[2 * l + 1], 1, {(int)o, 0, 0}, np, o, 0};
        np += o;
        na += 2 * (size_t)B * o;
    }
    na += (size_t)B * (size_t)sizes[n_layers] + (size_t)B; /* probs, losses */
    m->n_params = np;
    m->params = base_alloc_floats(np);
    m->grads = base_alloc_floats(np);
    m->acts = base_alloc_floats(na);
    m->dacts = base_alloc_floats(na);
    if (!m->params || !m->grads || !m->acts || !m->dacts) {
        nn_mlp_free(m);
        return base_fail(e, BASE_ENOMEM, "out of memory allocating the MLP");
    }
    float *a = m->acts;
    for (int l = 0; l < n_layers; l++) {
        m->w[l] = m->params + m->tensors[2 * l].offset;
        m->b[l] = m->params + m->tensors[2 * l + 1].offset;
        m->pre[l] = a;
        a += (size_t)B * sizes[l + 1];
        m->post[l] = a;
        a += (size_t)B * sizes[l + 1];
    }
    m->probs = a;
    m->losses = a + (size_t)B * sizes[n_layers];
    *out = m;
    return BASE_OK;
}

void nn_mlp_free(nn_mlp *m) {
    if (!m) return;
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->dacts);
    free(m);
}

void nn_mlp_init(nn_mlp *m, uint64_t seed) {
    base_rng r;
    base_rng_seed(&r, seed);
    for (int l = 0; l < m->n_layers; l++) {
        size_t n = (size_t)m->sizes[l] * m->sizes[l + 1];
        float std = 1.0f / sqrtf((float)m->sizes[l]);
        for (size_t i = 0; i < n; i++) m->w[l][i] = std * base_rng_normal(&r);
        memset(m->b[l], 0, (size_t)m->sizes[l + 1] * sizeof(float));
    }
}

/* Activation gradients live at the same offsets in dacts as the activations in acts. */
static float *D(const nn_mlp *m, const float *act) {
    return m->dacts + (act - m->acts);
}

float nn_mlp_forward(nn_mlp *m, const float *x, const int *y, int B) {
    BASE_ASSERT(B >= 1 && B <= m->B);
    const float *in = x;
    int L = m->n_layers;
    for (int l = 0; l < L; l++) {
        tensor_matmul_fwd(m->pre[l], in, m->w[l], m->b[l], B, m->sizes[l], m->sizes[l + 1]);
        if (l < L - 1) tensor_gelu_fwd(m->post[l], m->pre[l], (size_t)B * m->sizes[l + 1]);
        in = m->post[l];
    }
    m->last_x = x;
    m->last_y = y;
    m->last_B = B;
    if (!y) return 0.0f;
    int valid;
    return tensor_xent_fwd(m->probs, m->losses, m->pre[L - 1], y, B, m->sizes[L], -1, &valid);
}

void nn_mlp_backward(nn_mlp *m) {
    int B = m->last_B, L = m->n_layers;
    memset(m->dacts, 0, (size_t)(m->probs - m->acts) * sizeof(float));
    tensor_xent_bwd(D(m, m->pre[L - 1]), m->probs, m->last_y, B, m->sizes[L], -1, 1.0f / (float)B);
    for (int l = L - 1; l >= 0; l--) {
        if (l < L - 1)
            tensor_gelu_bwd(D(m, m->pre[l]), m->pre[l], D(m, m->post[l]),
                            (size_t)B * m->sizes[l + 1]);
        const float *in = l ? m->post[l - 1] : m->last_x;
        float *din = l ? D(m, m->post[l - 1]) : NULL;
        float *dw = m->grads + m->tensors[2 * l].offset,
              *db = m->grads + m->tensors[2 * l + 1].offset;
        tensor_matmul_bwd(din, dw, db, D(m, m->pre[l]), in, m->w[l], B, m->sizes[l],
                          m->sizes[l + 1]);
    }
}

int nn_mlp_argmax(const nn_mlp *m, int b) {
    int K = m->sizes[m->n_layers], best = 0;
    const float *row = m->pre[m->n_layers - 1] + (size_t)b * K;
    for (int k = 1; k < K; k++)
        if (row[k] > row[best]) best = k;
    return best;
}
