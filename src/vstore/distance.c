/* vstore/distance.c: the distance kernels (squared l2, 1 - inner product, cosine) with a scalar
 * reference and AVX2 / AVX-512 versions chosen once at run time, so a binary built elsewhere
 * still runs (and agrees with the reference) on a CPU without them. */
#include "vstore/hnsw.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define VDIST_X86 1
#include <immintrin.h>
#endif

const char *vdist_metric_name(vdist_metric m) {
    switch (m) {
    case VDIST_L2:
        return "l2";
    case VDIST_IP:
        return "ip";
    case VDIST_COSINE:
        return "cosine";
    }
    return "?";
}

int vdist_metric_parse(const char *s, vdist_metric *out) {
    if (!s) return -1;
    if (!strcmp(s, "l2"))
        *out = VDIST_L2;
    else if (!strcmp(s, "ip"))
        *out = VDIST_IP;
    else if (!strcmp(s, "cosine"))
        *out = VDIST_COSINE;
    else
        return -1;
    return 0;
}

/* ---- scalar reference: double accumulation, the yardstick of the tests */

static float cosine_of(double dot, double na, double nb) {
    if (na == 0.0 || nb == 0.0) return 1.0f; /* the zero vector is orthogonal to everything */
    return (float)(1.0 - dot / (sqrt(na) * sqrt(nb)));
}

float vdist_ref(vdist_metric m, const float *a, const float *b, size_t d) {
    double s = 0, na = 0, nb = 0;
    switch (m) {
    case VDIST_L2:
        for (size_t i = 0; i < d; i++) {
            double t = (double)a[i] - (double)b[i];
            s += t * t;
        }
        return (float)s;
    case VDIST_IP:
        for (size_t i = 0; i < d; i++) s += (double)a[i] * (double)b[i];
        return (float)(1.0 - s);
    case VDIST_COSINE:
        for (size_t i = 0; i < d; i++) {
            s += (double)a[i] * (double)b[i];
            na += (double)a[i] * (double)a[i];
            nb += (double)b[i] * (double)b[i];
        }
        return cosine_of(s, na, nb);
    }
    return NAN;
}

/* ---- portable float kernels (the fallback when neither AVX2 nor AVX-512 is there). Sixteen
 * independent lanes: the compiler turns them into whatever vectors the target has (four SSE
 * registers on baseline x86-64) without reassociating a single sum. */

#define LANES 16

static float l2_scalar(const float *a, const float *b, size_t d) {
    float s[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= d; i += LANES)
        for (int j = 0; j < LANES; j++) {
            float t = a[i + (size_t)j] - b[i + (size_t)j];
            s[j] += t * t;
        }
    for (int j = 1; j < LANES; j++) s[0] += s[j];
    for (; i < d; i++) s[0] += (a[i] - b[i]) * (a[i] - b[i]);
    return s[0];
}

static float dot_scalar(const float *a, const float *b, size_t d) {
    float s[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= d; i += LANES)
        for (int j = 0; j < LANES; j++) s[j] += a[i + (size_t)j] * b[i + (size_t)j];
    for (int j = 1; j < LANES; j++) s[0] += s[j];
    for (; i < d; i++) s[0] += a[i] * b[i];
    return s[0];
}

static void dot3_scalar(const float *a, const float *b, size_t d, float out[3]) {
    float s = 0, na = 0, nb = 0;
    for (size_t i = 0; i < d; i++) {
        s += a[i] * b[i];
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    out[0] = s, out[1] = na, out[2] = nb;
}

#ifdef VDIST_X86
/* ---- AVX2 + FMA: two 8-wide accumulators hide the FMA latency; the tail is masked loads */

__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static inline __m256i tail_mask256(size_t r) {
    /* r in [1, 7]: lanes below r on */
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), idx);
}

__attribute__((target("avx2,fma"))) static float l2_avx2(const float *a, const float *b, size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
        s0 = _mm256_fmadd_ps(t0, t0, s0);
        s1 = _mm256_fmadd_ps(t1, t1, s1);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
        s0 = _mm256_fmadd_ps(t, t, s0);
    }
    if (i < d) {
        __m256i m = tail_mask256(d - i);
        __m256 t = _mm256_sub_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m));
        s1 = _mm256_fmadd_ps(t, t, s1);
    }
    return hsum256(_mm256_add_ps(s0, s1));
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b,
                                                          size_t d) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= d; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < d) {
        __m256i m = tail_mask256(d - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum256(_mm256_add_ps(s0, s1));
}

__attribute__((target("avx2,fma"))) static void dot3_avx2(const float *a, const float *b, size_t d,
                                                          float out[3]) {
    __m256 s = _mm256_setzero_ps(), na = _mm256_setzero_ps(), nb = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
        __m256 x = _mm256_loadu_ps(a + i), y = _mm256_loadu_ps(b + i);
        s = _mm256_fmadd_ps(x, y, s);
        na = _mm256_fmadd_ps(x, x, na);
        nb = _mm256_fmadd_ps(y, y, nb);
    }
    if (i < d) {
        __m256i m = tail_mask256(d - i);
        __m256 x = _mm256_maskload_ps(a + i, m), y = _mm256_maskload_ps(b + i, m);
        s = _mm256_fmadd_ps(x, y, s);
        na = _mm256_fmadd_ps(x, x, na);
        nb = _mm256_fmadd_ps(y, y, nb);
    }
    out[0] = hsum256(s), out[1] = hsum256(na), out[2] = hsum256(nb);
}

/* ---- AVX-512: 16-wide, the tail in one masked step */

#define VDIST_T512 __attribute__((target("avx512f")))

VDIST_T512 static float l2_avx512(const float *a, const float *b, size_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
        s0 = _mm512_fmadd_ps(t0, t0, s0);
        s1 = _mm512_fmadd_ps(t1, t1, s1);
    }
    for (; i + 16 <= d; i += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
        s0 = _mm512_fmadd_ps(t, t, s0);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
        s1 = _mm512_fmadd_ps(t, t, s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

VDIST_T512 static float dot_avx512(const float *a, const float *b, size_t d) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    for (; i + 16 <= d; i += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

VDIST_T512 static void dot3_avx512(const float *a, const float *b, size_t d, float out[3]) {
    __m512 s = _mm512_setzero_ps(), na = _mm512_setzero_ps(), nb = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= d; i += 16) {
        __m512 x = _mm512_loadu_ps(a + i), y = _mm512_loadu_ps(b + i);
        s = _mm512_fmadd_ps(x, y, s);
        na = _mm512_fmadd_ps(x, x, na);
        nb = _mm512_fmadd_ps(y, y, nb);
    }
    if (i < d) {
        __mmask16 m = (__mmask16)((1u << (d - i)) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, a + i), y = _mm512_maskz_loadu_ps(m, b + i);
        s = _mm512_fmadd_ps(x, y, s);
        na = _mm512_fmadd_ps(x, x, na);
        nb = _mm512_fmadd_ps(y, y, nb);
    }
    out[0] = _mm512_reduce_add_ps(s), out[1] = _mm512_reduce_add_ps(na);
    out[2] = _mm512_reduce_add_ps(nb);
}
#endif

/* ---- dispatch: resolved once, on first use (threads racing there all store the same) */

typedef float (*pair_fn)(const float *, const float *, size_t);
typedef void (*dot3_fn)(const float *, const float *, size_t, float[3]);

typedef struct {
    pair_fn l2, dot;
    dot3_fn dot3;
    const char *name;
} kernels;

static const kernels k_scalar = {l2_scalar, dot_scalar, dot3_scalar, "scalar"};
#ifdef VDIST_X86
static const kernels k_avx2 = {l2_avx2, dot_avx2, dot3_avx2, "avx2"};
static const kernels k_avx512 = {l2_avx512, dot_avx512, dot3_avx512, "avx512"};
#endif

static const kernels *_Atomic chosen;
static int forced_level = -1; /* vdist_force_isa: tests pin a level; -1 = the best there is */

static const kernels *pick(void) {
    const kernels *k = &k_scalar;
#ifdef VDIST_X86
    __builtin_cpu_init();
    int has512 = __builtin_cpu_supports("avx512f");
    int has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int lvl = forced_level;
    if ((lvl < 0 || lvl >= 2) && has512)
        k = &k_avx512;
    else if ((lvl < 0 || lvl >= 1) && has2)
        k = &k_avx2;
#endif
    return k;
}

static inline const kernels *K(void) {
    const kernels *k = atomic_load_explicit(&chosen, memory_order_acquire);
    if (!k) {
        k = pick();
        atomic_store_explicit(&chosen, k, memory_order_release);
    }
    return k;
}

int vdist_force_isa(int level) {
    forced_level = level;
    const kernels *k = pick();
    atomic_store_explicit(&chosen, k, memory_order_release);
    return !strcmp(k->name, "avx512") ? 2 : !strcmp(k->name, "avx2") ? 1 : 0;
}

const char *vdist_isa(void) {
    return K()->name;
}

float vdist(vdist_metric m, const float *a, const float *b, size_t d) {
    const kernels *k = K();
    float t[3];
    switch (m) {
    case VDIST_L2:
        return k->l2(a, b, d);
    case VDIST_IP:
        return 1.0f - k->dot(a, b, d);
    case VDIST_COSINE:
        k->dot3(a, b, d, t);
        return cosine_of(t[0], t[1], t[2]);
    }
    return NAN;
}

static float ip_dispatched(const float *a, const float *b, size_t d) {
    return 1.0f - K()->dot(a, b, d);
}

vdist_fn vdist_kernel(vdist_metric m) {
    return m == VDIST_L2 ? K()->l2 : ip_dispatched;
}
