/* Fused dense logic-layer kernels, feature-major layout: row i of x is feature i over the batch.
 *
 * forward:  y[g] = c0 + c1 a + c2 b + c3 ab          with a = x[ia[g]], b = x[ib[g]]
 * backward: gc[g] = (sum gy, sum a gy, sum b gy, sum ab gy)   (4 per-gate batch reductions)
 *           gx[i] = sum over the gates reading i of gy * (c1 + c3 b) or gy * (c2 + c3 a),
 *                   gathered through a reverse index (CSR: rev_ptr, rev_gate, rev_side) so
 *                   threads own disjoint rows of gx and never race.
 * dense_grad_coef computes the sums alone (for a first layer, whose input needs no gradient).
 * dense_backward does both in the gather sweep: a gate's coefficient sums are taken while its
 * A-side entry is gathered (x[i] is then its A row), so every gate's sums have one writer.
 * Each function exists for float and double (suffix _f32 / _f64) and for bfloat16 storage with
 * float arithmetic and float coefficients (_bf16): the kernels wait on memory, so halving the
 * bytes of the activation and gradient rows is what makes that variant faster.
 * Every kernel returns 0, or -1 when a scratch buffer could not be allocated (its outputs are
 * then undefined and the caller raises MemoryError). */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define INLINE static inline __attribute__((always_inline))

#ifndef PF_DIST
#define PF_DIST 4
#endif
/* Ask for the cache lines of a row a few gates ahead: rows are read in random order, so the
 * hardware prefetcher cannot guess them and every row would otherwise wait on the memory. */
static inline void prefetch_row(const void *p, int64_t bytes) {
    for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch((const char *)p + o, 0, 3);
}

/* A kernel's scratch buffer (NULL when there is no memory; every one is NULL in a build with
 * -DSCRATCH_FAILS, which tests that path). */
static inline void *scratch(size_t bytes) {
#ifdef SCRATCH_FAILS
    (void)bytes;
    return NULL;
#else
    return malloc(bytes);
#endif
}

/* From inside a parallel region: a thread's scratch buffer could not be allocated. */
static inline void mark_failed(int *failed) {
#pragma omp atomic write
    *failed = 1;
}

/* Storage: float, double, or bfloat16 (the upper half of a float, kept as uint16_t). Arithmetic
 * is in T (float for bfloat16); loads widen with ld_*, stores narrow with st_* (round to nearest
 * even; activations and gradients are finite). */
typedef uint16_t bf16;
INLINE float ld_f32(float v) { return v; }
INLINE float st_f32(float v) { return v; }
INLINE double ld_f64(double v) { return v; }
INLINE double st_f64(double v) { return v; }
INLINE float ld_bf16(bf16 v) {
    const uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
INLINE bf16 st_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (bf16)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

/* Ask for both input rows of gate h (of a layer reading rows of x). */
#define PREFETCH_GATE(x, batch, ia, ib, h)                                                        \
    do {                                                                                           \
        prefetch_row((x) + (ia)[h] * (batch), (batch) * sizeof(*(x)));                             \
        prefetch_row((x) + (ib)[h] * (batch), (batch) * sizeof(*(x)));                             \
    } while (0)

/* Row of gy holding gate g's output gradient: its own (per == 1), or, when the layer feeds a
 * GroupSum directly, its class's row (per = gates per class): the broadcast is never written. */
#define GY_ROW(g, per) ((per) == 1 ? (g) : (g) / (per))

#define DEFINE_KERNELS(S, T, SUFFIX)                                                               \
int dense_forward_##SUFFIX(const S *restrict x, int64_t batch, const int64_t *restrict ia,         \
                           const int64_t *restrict ib, const T *restrict c, int64_t n_out,         \
                           S *restrict y, int threads) {                                           \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                              \
    for (int64_t g = 0; g < n_out; g++) {                                                          \
        if (g + PF_DIST < n_out) PREFETCH_GATE(x, batch, ia, ib, g + PF_DIST);                     \
        const S *a = x + ia[g] * batch, *b = x + ib[g] * batch;                                    \
        const T c0 = c[4 * g], c1 = c[4 * g + 1], c2 = c[4 * g + 2], c3 = c[4 * g + 3];            \
        S *out = y + g * batch;                                                                    \
        _Pragma("omp simd")                                                                        \
        for (int64_t s = 0; s < batch; s++) {                                                      \
            const T va = ld_##SUFFIX(a[s]);                                                        \
            out[s] = st_##SUFFIX(c0 + c1 * va + (c2 + c3 * va) * ld_##SUFFIX(b[s]));               \
        }                                                                                          \
    }                                                                                              \
    return 0;                                                                                      \
}                                                                                                  \
                                                                                                   \
int dense_grad_coef_##SUFFIX(const S *restrict x, int64_t batch, const int64_t *restrict ia,       \
                             const int64_t *restrict ib, const S *restrict gy, int64_t per,        \
                             int64_t n_out, T *restrict gc, int threads) {                         \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                              \
    for (int64_t g = 0; g < n_out; g++) {                                                          \
        const S *a = x + ia[g] * batch, *b = x + ib[g] * batch, *d = gy + GY_ROW(g, per) * batch;  \
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                          \
        _Pragma("omp simd reduction(+ : s0, s1, s2, s3)")                                          \
        for (int64_t s = 0; s < batch; s++) {                                                      \
            const T vd = ld_##SUFFIX(d[s]), vb = ld_##SUFFIX(b[s]), ad = ld_##SUFFIX(a[s]) * vd;   \
            s0 += vd;                                                                              \
            s1 += ad;                                                                              \
            s2 += vb * vd;                                                                         \
            s3 += ad * vb;                                                                         \
        }                                                                                          \
        gc[4 * g] = s0; gc[4 * g + 1] = s1; gc[4 * g + 2] = s2; gc[4 * g + 3] = s3;               \
    }                                                                                              \
    return 0;                                                                                      \
}

/* A last layer and its GroupSum in one pass: sums[k][s] = sum of the outputs of class k's gates
 * (the per = n_out / k consecutive gates g in [k per, (k + 1) per)); the layer's output rows are
 * never stored. Blocks of GS_BLOCK gates add into rows of their own, then each class adds its
 * blocks in a fixed order, so the result does not depend on the thread count. */
#define GS_BLOCK 64
#define DEFINE_GROUPED(S, T, SUFFIX)                                                               \
int dense_groupsum_forward_##SUFFIX(const S *restrict x, int64_t batch,                            \
                                    const int64_t *restrict ia, const int64_t *restrict ib,        \
                                    const T *restrict c, int64_t n_out, int64_t k,                 \
                                    T *restrict sums, int threads) {                               \
    const int64_t per = n_out / k, nb = (per + GS_BLOCK - 1) / GS_BLOCK;                           \
    T *part = scratch(sizeof(T) * k * nb * batch);                                                 \
    if (part == NULL) return -1;                                                                   \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                              \
    for (int64_t t = 0; t < k * nb; t++) {                                                         \
        const int64_t first = (t / nb) * per + (t % nb) * GS_BLOCK;                                \
        const int64_t end = first + GS_BLOCK < (t / nb + 1) * per ? first + GS_BLOCK : (t / nb + 1) * per; \
        T *restrict acc = part + t * batch;                                                        \
        memset(acc, 0, sizeof(T) * batch);                                                         \
        for (int64_t g = first; g < end; g++) {                                                    \
            if (g + PF_DIST < end) PREFETCH_GATE(x, batch, ia, ib, g + PF_DIST);                   \
            const S *a = x + ia[g] * batch, *b = x + ib[g] * batch;                                \
            const T c0 = c[4 * g], c1 = c[4 * g + 1], c2 = c[4 * g + 2], c3 = c[4 * g + 3];        \
            _Pragma("omp simd")                                                                    \
            for (int64_t s = 0; s < batch; s++) {                                                  \
                const T va = ld_##SUFFIX(a[s]);                                                    \
                acc[s] += c0 + c1 * va + (c2 + c3 * va) * ld_##SUFFIX(b[s]);                       \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    for (int64_t cls = 0; cls < k; cls++) {                                                        \
        T *restrict out = sums + cls * batch;                                                      \
        memset(out, 0, sizeof(T) * batch);                                                         \
        for (int64_t j = 0; j < nb; j++) {                                                         \
            const T *p = part + (cls * nb + j) * batch;                                            \
            for (int64_t s = 0; s < batch; s++) out[s] += p[s];                                    \
        }                                                                                          \
    }                                                                                              \
    free(part);                                                                                    \
    return 0;                                                                                      \
}

/* The input gradient row of x[i] builds up in a per-thread T buffer and is stored once. */
#define DEFINE_BACKWARD(S, T, SUFFIX)                                                               \
int dense_backward_##SUFFIX(const S *restrict x, int64_t batch, const int64_t *restrict ia,            \
                           const int64_t *restrict ib, const T *restrict c, const S *restrict gy,      \
                           int64_t per, int64_t n_in, const int64_t *restrict rev_ptr,                 \
                           const int64_t *restrict rev_gate, const uint8_t *restrict rev_side,         \
                           T *restrict gc, S *restrict gx, int threads) {                              \
    const int64_t n_rev = rev_ptr[n_in];                                                               \
    int failed = 0;                                                                                    \
    _Pragma("omp parallel num_threads(threads)")                                                       \
    {                                                                                                  \
    T *restrict out = scratch(sizeof(T) * batch);                                                      \
    if (out == NULL) mark_failed(&failed);                                                             \
    _Pragma("omp for schedule(dynamic, 16)")                                                           \
    for (int64_t i = 0; i < n_in; i++) {                                                               \
        if (out == NULL) continue;                                                                     \
        const S *xi = x + i * batch;                                                                   \
        memset(out, 0, sizeof(T) * batch);                                                             \
        for (int64_t k = rev_ptr[i]; k < rev_ptr[i + 1]; k++) {                                        \
            if (k + PF_DIST < n_rev) {                                                                 \
                const int64_t h = rev_gate[k + PF_DIST];                                               \
                prefetch_row(gy + GY_ROW(h, per) * batch, batch * sizeof(S));                         \
                prefetch_row(x + (rev_side[k + PF_DIST] ? ia[h] : ib[h]) * batch, batch * sizeof(S));  \
            }                                                                                          \
            const int64_t g = rev_gate[k];                                                             \
            const S *d = gy + GY_ROW(g, per) * batch;                                                  \
            const T c3 = c[4 * g + 3];                                                                 \
            if (rev_side[k] == 0) { /* x[i] is A, other is B */                                        \
                const S *b = x + ib[g] * batch;                                                        \
                const T c1 = c[4 * g + 1];                                                             \
                T q0 = 0, q1 = 0, q2 = 0, q3 = 0;                                                      \
                _Pragma("omp simd reduction(+ : q0, q1, q2, q3)")                                      \
                for (int64_t s = 0; s < batch; s++) {                                                  \
                    const T vd = ld_##SUFFIX(d[s]), vb = ld_##SUFFIX(b[s]);                            \
                    const T ad = ld_##SUFFIX(xi[s]) * vd;                                              \
                    q0 += vd;                                                                          \
                    q1 += ad;                                                                          \
                    q2 += vb * vd;                                                                     \
                    q3 += ad * vb;                                                                     \
                    out[s] += vd * (c1 + c3 * vb);                                                     \
                }                                                                                      \
                gc[4 * g] = q0; gc[4 * g + 1] = q1; gc[4 * g + 2] = q2; gc[4 * g + 3] = q3;           \
            } else { /* x[i] is B, other is A */                                                       \
                const S *a = x + ia[g] * batch;                                                        \
                const T c2 = c[4 * g + 2];                                                             \
                _Pragma("omp simd")                                                                    \
                for (int64_t s = 0; s < batch; s++)                                                    \
                    out[s] += ld_##SUFFIX(d[s]) * (c2 + c3 * ld_##SUFFIX(a[s]));                       \
            }                                                                                          \
        }                                                                                              \
        S *row = gx + i * batch;                                                                       \
        _Pragma("omp simd")                                                                            \
        for (int64_t s = 0; s < batch; s++) row[s] = st_##SUFFIX(out[s]);                              \
    }                                                                                                  \
    free(out);                                                                                         \
    }                                                                                                  \
    return failed ? -1 : 0;                                                                            \
}

/* Learned connections: row r of sel (one per gate input) mixes its k candidate rows of x,
 *   sel[r] = sum_j p[r k + j] x[cand[r k + j]],
 * and its input gradient gx[i] is the sum over the entries e = r k + j reading i of
 * p[e] gsel[r]. Both are one weighted gather: out[i] = sum over q in [ptr[i], ptr[i + 1]) of
 * w[entry[q]] src[src_row[q]] (forward: ptr = 0, k, 2k, ..., entry = q, src_row = cand; backward:
 * the reverse index of cand, src_row = entry / k), so threads own disjoint output rows. Rows
 * build up in a per-thread T buffer and are stored once (bfloat16 is rounded once).
 * select_grad_weights: gp[e] = sum_s gsel[e / k][s] x[cand[e]][s] (one writer per entry). */
#define DEFINE_SELECT(S, T, SUFFIX)                                                                 \
int weighted_gather_##SUFFIX(const S *restrict src, int64_t batch, const int64_t *restrict ptr,     \
                             const int64_t *restrict entry, const int64_t *restrict src_row,        \
                             const T *restrict w, int64_t n_out, S *restrict out, int threads) {    \
    const int64_t n_entries = ptr[n_out], row_bytes = batch * sizeof(S);                            \
    int failed = 0;                                                                                 \
    _Pragma("omp parallel num_threads(threads)")                                                    \
    {                                                                                               \
    T *restrict acc = scratch(sizeof(T) * batch);                                                   \
    if (acc == NULL) mark_failed(&failed);                                                          \
    _Pragma("omp for schedule(dynamic, 16)")                                                        \
    for (int64_t i = 0; i < n_out; i++) {                                                           \
        if (acc == NULL) continue;                                                                  \
        memset(acc, 0, sizeof(T) * batch);                                                          \
        for (int64_t q = ptr[i]; q < ptr[i + 1]; q++) {                                             \
            if (q + PF_DIST < n_entries) prefetch_row(src + src_row[q + PF_DIST] * batch, row_bytes);\
            const S *row = src + src_row[q] * batch;                                                \
            const T wq = w[entry[q]];                                                               \
            _Pragma("omp simd")                                                                     \
            for (int64_t s = 0; s < batch; s++) acc[s] += wq * ld_##SUFFIX(row[s]);                 \
        }                                                                                           \
        S *o = out + i * batch;                                                                     \
        _Pragma("omp simd")                                                                         \
        for (int64_t s = 0; s < batch; s++) o[s] = st_##SUFFIX(acc[s]);                             \
    }                                                                                               \
    free(acc);                                                                                      \
    }                                                                                               \
    return failed ? -1 : 0;                                                                         \
}                                                                                                   \
                                                                                                    \
int select_grad_weights_##SUFFIX(const S *restrict x, int64_t batch, const int64_t *restrict cand,  \
                                 const S *restrict gsel, int64_t n_entries, int64_t k,              \
                                 T *restrict gp, int threads) {                                     \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                               \
    for (int64_t e = 0; e < n_entries; e++) {                                                       \
        if (e + PF_DIST < n_entries) prefetch_row(x + cand[e + PF_DIST] * batch, batch * sizeof(S));\
        const S *d = gsel + (e / k) * batch, *xr = x + cand[e] * batch;                             \
        T acc = 0;                                                                                  \
        _Pragma("omp simd reduction(+ : acc)")                                                      \
        for (int64_t s = 0; s < batch; s++) acc += ld_##SUFFIX(d[s]) * ld_##SUFFIX(xr[s]);          \
        gp[e] = acc;                                                                                \
    }                                                                                               \
    return 0;                                                                                       \
}

/* Relaxed coefficients from the gate weights of one or more layers in one pass, in place of a
 * dozen small torch ops per layer. m == 16 (softmax16): probs = softmax(w), c = probs @ basis
 * (16 x 4); m == 4 (truth4): probs = sigmoid(w), c = probs @ basis (4 x 4). Layer l's n[l] gates
 * read the weights at address w_at[l]; c and probs run over the gates of all layers in turn.
 * Forward keeps probs for backward: gw = probs (gp - probs . gp) (softmax) or probs (1 - probs) gp
 * (sigmoid), gp = basis @ gc, written to the address gw_at[l] of each layer.
 * Forward goes a vector of gates at a time, one gate per lane (GCC vector extensions: an AVX-512,
 * AVX or SSE register), so the max, the exps and the sums are lane-wise; backward goes a gate at
 * a time over its m weights, which vectorise as they lie. */
#if defined(__AVX512F__)
#define VEC_BYTES 64
#elif defined(__AVX__)
#define VEC_BYTES 32
#else
#define VEC_BYTES 16
#endif
typedef float vec_f32 __attribute__((vector_size(VEC_BYTES)));
typedef int32_t mask_f32 __attribute__((vector_size(VEC_BYTES)));
typedef double vec_f64 __attribute__((vector_size(VEC_BYTES)));
typedef int64_t mask_f64 __attribute__((vector_size(VEC_BYTES)));

/* Multiply-adds fuse in the coefficient kernels (the build is ISO C, which keeps them apart):
 * every gate goes through the same code in the same lane, so results still do not depend on the
 * thread count. */
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")

/* Lane-wise m ? a : b (m from a vector compare: all ones or all zeros per lane). */
#define DEFINE_LANE_SELECT(SUFFIX)                                                                    \
INLINE vec_##SUFFIX select_##SUFFIX(mask_##SUFFIX m, vec_##SUFFIX a, vec_##SUFFIX b) {             \
    return (vec_##SUFFIX)((m & (mask_##SUFFIX)a) | (~m & (mask_##SUFFIX)b));                       \
}
DEFINE_LANE_SELECT(f32)
DEFINE_LANE_SELECT(f64)

/* exp(x) for x <= 0 in float, branch-free so loops over it vectorise (libm's expf does not):
 * x = n ln2 + r with |r| <= ln2 / 2, a degree-7 Taylor polynomial for e^r (relative error
 * < 1e-7, float's own precision), 2^n from the exponent bits; below -87 it is ~0 anyway.
 * n is rounded by adding and subtracting 1.5 x 2^23, which vectorises where rintf does not. */
INLINE vec_f32 exp_neg_f32(vec_f32 x) {
    x = select_f32(x < -87.0f, (vec_f32){} - 87.0f, x);
    const vec_f32 n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const vec_f32 r = (x - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
    vec_f32 p = r * (1.0f / 5040) + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return p * (vec_f32)((__builtin_convertvector(n, mask_f32) + 127) << 23);
}

INLINE vec_f64 exp_neg_f64(vec_f64 x) { /* the float64 (test) path: libm, lane by lane */
    for (int l = 0; l < (int)(sizeof x / sizeof x[0]); l++) x[l] = exp(x[l]);
    return x;
}

/* The sum of 16 values, as a tree of halves added lane-wise. With AVX-512 and float, one register
 * reduced by shuffles: GCC compiled the tree to vector stores read back a lane at a time, which
 * the core cannot forward (the weight-gradient pass of six 8000-gate layers, alone, on two
 * threads: 0.33 -> 0.14 ms). */
#define DEFINE_SUM16_TREE(T, SUFFIX)                                                               \
INLINE T sum16_tree_##SUFFIX(const T *q) {                                                         \
    T t[16];                                                                                       \
    memcpy(t, q, sizeof t);                                                                        \
    for (int h = 8; h > 0; h /= 2)                                                                 \
        for (int j = 0; j < h; j++) t[j] += t[j + h];                                              \
    return t[0];                                                                                   \
}
DEFINE_SUM16_TREE(float, f32)
DEFINE_SUM16_TREE(double, f64)
#if defined(__AVX512F__)
INLINE float sum16_f32(const float *q) { return _mm512_reduce_add_ps(_mm512_loadu_ps(q)); }
#else
#define sum16_f32 sum16_tree_f32
#endif
#define sum16_f64 sum16_tree_f64

#define DEFINE_COEF(T, SUFFIX)                                                                      \
enum { LANES_##SUFFIX = VEC_BYTES / sizeof(T) };                                                   \
/* A vector of gates from w (m weights each): coefficients into c, probabilities into probs,     \
 * both gate-major. */                                                                             \
INLINE void coef_lanes_##SUFFIX(const T *restrict w, const int m, const T *restrict basis,         \
                                T *restrict c, T *restrict probs) {                                \
    vec_##SUFFIX v[16], acc[4] = {{0}};                                                            \
    for (int j = 0; j < m; j++) {                                                                  \
        T lanes[LANES_##SUFFIX];                                                                   \
        for (int l = 0; l < LANES_##SUFFIX; l++) lanes[l] = w[l * m + j];                          \
        memcpy(&v[j], lanes, sizeof lanes);                                                        \
    }                                                                                              \
    if (m == 16) {                                                                                 \
        vec_##SUFFIX top = v[0], sum = {0};                                                        \
        for (int j = 1; j < 16; j++) top = select_##SUFFIX(v[j] > top, v[j], top);                 \
        for (int j = 0; j < 16; j++) v[j] = exp_neg_##SUFFIX(v[j] - top), sum += v[j];             \
        const vec_##SUFFIX inv = 1 / sum;                                                          \
        for (int j = 0; j < 16; j++) v[j] *= inv;                                                  \
    } else {                                                                                       \
        for (int j = 0; j < m; j++) { /* sigmoid from e^-|w| <= 1 */                               \
            const mask_##SUFFIX neg = v[j] < 0;                                                    \
            const vec_##SUFFIX e = exp_neg_##SUFFIX(select_##SUFFIX(neg, v[j], -v[j]));            \
            v[j] = select_##SUFFIX(neg, e, e * 0 + 1) / (1 + e);                                   \
        }                                                                                          \
    }                                                                                              \
    for (int j = 0; j < m; j++)                                                                    \
        for (int k = 0; k < 4; k++) acc[k] += v[j] * basis[4 * j + k];                             \
    for (int l = 0; l < LANES_##SUFFIX; l++) {                                                     \
        for (int k = 0; k < 4; k++) c[4 * l + k] = acc[k][l];                                      \
        for (int j = 0; j < m; j++) probs[l * m + j] = v[j][l];                                    \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
/* cnt <= a vector of gates: whole vectors in place, the last few through a zero-padded copy. */   \
INLINE void coef_block_##SUFFIX(const T *restrict w, int cnt, const int m, const T *restrict basis, \
                                T *restrict c, T *restrict probs) {                                \
    if (cnt == LANES_##SUFFIX) {                                                                   \
        coef_lanes_##SUFFIX(w, m, basis, c, probs);                                                \
        return;                                                                                    \
    }                                                                                              \
    T wp[16 * LANES_##SUFFIX] = {0}, cp[4 * LANES_##SUFFIX], pp[16 * LANES_##SUFFIX];              \
    memcpy(wp, w, sizeof(T) * m * cnt);                                                            \
    coef_lanes_##SUFFIX(wp, m, basis, cp, pp);                                                     \
    memcpy(c, cp, sizeof(T) * 4 * cnt);                                                            \
    memcpy(probs, pp, sizeof(T) * m * cnt);                                                        \
}                                                                                                  \
                                                                                                   \
int coef_forward_##SUFFIX(const int64_t *restrict w_at, const int64_t *restrict n, int64_t L,      \
                          int m, const T *restrict basis, T *restrict c, T *restrict probs,        \
                          int threads) {                                                           \
    _Pragma("omp parallel num_threads(threads)")                                                   \
    for (int64_t l = 0, first = 0; l < L; first += n[l], l++) {                                    \
        const T *w = (const T *)(intptr_t)w_at[l];                                                 \
        _Pragma("omp for schedule(static) nowait")                                                 \
        for (int64_t g = 0; g < n[l]; g += LANES_##SUFFIX) {                                       \
            const int cnt = n[l] - g < LANES_##SUFFIX ? (int)(n[l] - g) : LANES_##SUFFIX;          \
            T *cg = c + 4 * (first + g), *pg = probs + m * (first + g);                            \
            if (m == 16) /* constant m: fully unrolled */                                          \
                coef_block_##SUFFIX(w + 16 * g, cnt, 16, basis, cg, pg);                           \
            else                                                                                   \
                coef_block_##SUFFIX(w + 4 * g, cnt, 4, basis, cg, pg);                             \
        }                                                                                          \
    }                                                                                              \
    return 0;                                                                                      \
}                                                                                                  \
                                                                                                   \
/* One gate's weight gradient from its probabilities p and coefficient gradient gc; bt is the      \
 * basis transposed (4, m), so gp is four multiply-adds over the m weights. */                     \
INLINE void coef_grad_##SUFFIX(const T *restrict p, const T *restrict gc, const int m,             \
                               const T *restrict bt, T *restrict gw) {                             \
    T gp[16], q[16];                                                                               \
    for (int j = 0; j < m; j++) {                                                                  \
        gp[j] = bt[j] * gc[0] + bt[m + j] * gc[1] + bt[2 * m + j] * gc[2] + bt[3 * m + j] * gc[3];  \
        q[j] = p[j] * gp[j];                                                                       \
    }                                                                                              \
    const T dot = m == 16 ? sum16_##SUFFIX(q) : 0; /* p . gp */                                    \
    for (int j = 0; j < m; j++) gw[j] = m == 16 ? p[j] * (gp[j] - dot) : p[j] * (1 - p[j]) * gp[j]; \
}                                                                                                  \
                                                                                                   \
int coef_backward_##SUFFIX(const T *restrict probs, const T *restrict gc, const int64_t *restrict n,  \
                           int64_t L, int m, const T *restrict basis, const int64_t *restrict gw_at,  \
                           int threads) {                                                          \
    T bt[64];                                                                                      \
    for (int j = 0; j < m; j++)                                                                    \
        for (int k = 0; k < 4; k++) bt[k * m + j] = basis[4 * j + k];                              \
    _Pragma("omp parallel num_threads(threads)")                                                   \
    for (int64_t l = 0, first = 0; l < L; first += n[l], l++) {                                    \
        T *gw = (T *)(intptr_t)gw_at[l];                                                           \
        const T *p = probs + m * first, *gcl = gc + 4 * first;                                     \
        _Pragma("omp for schedule(static) nowait")                                                 \
        for (int64_t g = 0; g < n[l]; g++) {                                                       \
            if (m == 16)                                                                           \
                coef_grad_##SUFFIX(p + 16 * g, gcl + 4 * g, 16, bt, gw + 16 * g);                  \
            else                                                                                   \
                coef_grad_##SUFFIX(p + 4 * g, gcl + 4 * g, 4, bt, gw + 4 * g);                     \
        }                                                                                          \
    }                                                                                              \
    return 0;                                                                                      \
}

DEFINE_COEF(float, f32)
DEFINE_COEF(double, f64)
#pragma GCC pop_options

/* A stack of dense layers ending in a GroupSum, run in tiles of up to STACK_TILE samples: one
 * thread takes a tile through every layer, forward and then backward, so the tile's rows (gates x
 * tile values) move between nearby caches instead of each layer's whole (gates, batch) matrix
 * going out to memory and back, and the backward walks the gates in order, adding each gate's
 * two input gradients into rows that are the tile's own (nothing races, no reverse index).
 * L layers; n[0] is the input width and n[l] the gates of layer l; the wiring and coefficients
 * of all layers are concatenated (layer l's gates start at n[1] + ... + n[l - 1]). Tile t holds
 * samples [t tile, t tile + w) (w = tile but for the last); acts keeps, from sample t tile on, the
 * tile's input and the outputs of layers 1..L-1 (what backward reads), each row w values long.
 * The last layer's outputs are summed per class into sums (k, batch) and never stored.
 * Backward writes each tile's coefficient sums to gcp (tiles, gates, 4) and adds them up in tile
 * order: the result depends on the tile width (the caller's choice), not on which thread ran
 * which tile. */
#define STACK_TILE 64
/* Four vectors of partial sums added up, the totals added into q[0 .. 3]. With AVX-512 and
 * float: two rounds of 128-bit block shuffles gather each vector's partials into one block and
 * two in-block swaps add them up, about 14 instructions; GCC's own reduction of four `omp simd`
 * sums shuffled single lanes, about 130 instructions a gate, more than the gate's arithmetic
 * (the training step 1.10x faster without it). */
#if defined(__AVX512F__)
INLINE void sum4_float(vec_f32 v0, vec_f32 v1, vec_f32 v2, vec_f32 v3, float *restrict q) {
    const __m512 s0 = (__m512)v0, s1 = (__m512)v1, s2 = (__m512)v2, s3 = (__m512)v3;
    /* blocks: x = (s0 0+2, s0 1+3, s1 0+2, s1 1+3), y the same of s2, s3 */
    const __m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(s0, s1, 0x44), _mm512_shuffle_f32x4(s0, s1, 0xEE));
    const __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(s2, s3, 0x44), _mm512_shuffle_f32x4(s2, s3, 0xEE));
    /* block k: four partial sums of s_k */
    __m512 z = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x88), _mm512_shuffle_f32x4(x, y, 0xDD));
    z = _mm512_add_ps(z, _mm512_permute_ps(z, 0x4E));
    z = _mm512_add_ps(z, _mm512_permute_ps(z, 0xB1));
    const __m512i firsts = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m128 r = _mm512_castps512_ps128(_mm512_permutexvar_ps(firsts, z));
    _mm_storeu_ps(q, _mm_add_ps(_mm_loadu_ps(q), r));
}
#define SUM4_float sum4_float
#else
#define SUM4_float sum4_lanes_float
#endif
#define SUM4_double sum4_lanes_double
#define DEFINE_SUM4_LANES(T, V)                                                                    \
INLINE void sum4_lanes_##T(V s0, V s1, V s2, V s3, T *restrict q) {                                \
    for (int l = 0; l < (int)(sizeof(V) / sizeof(T)); l++)                                         \
        q[0] += s0[l], q[1] += s1[l], q[2] += s2[l], q[3] += s3[l];                                \
}
DEFINE_SUM4_LANES(float, vec_f32)
DEFINE_SUM4_LANES(double, vec_f64)

/* One layer's gates of a stack tile backward, w samples a row (a constant where inlined for
 * whole tiles): coefficient sums into q, input gradients added into g_in when need_gx. Output
 * gradient rows: d, one per ``per`` gates, d_step apart. */
#define DEFINE_STACK_GATES(T, V)                                                                   \
INLINE void stack_gates_backward_##T(const T *restrict in, int64_t n, const int64_t *restrict a_,  \
                                     const int64_t *restrict b_, const T *restrict cl,             \
                                     const T *restrict d, int64_t d_step, int64_t per,             \
                                     int need_gx, T *restrict q, T *g_in, int64_t w) {             \
    enum { L = sizeof(V) / sizeof(T) };                                                            \
    for (int64_t g = 0, left = per; g < n; g++) {                                                  \
        if (g + PF_DIST < n) {                                                                     \
            PREFETCH_GATE(in, w, a_, b_, g + PF_DIST);                                             \
            if (need_gx) PREFETCH_GATE(g_in, w, a_, b_, g + PF_DIST);                              \
        }                                                                                          \
        const T *a = in + a_[g] * w, *b = in + b_[g] * w;                                          \
        const T c1 = cl[4 * g + 1], c2 = cl[4 * g + 2], c3 = cl[4 * g + 3];                        \
        T sums[4] = {0, 0, 0, 0}, da[STACK_TILE], db[STACK_TILE];                                  \
        V s_0 = {0}, s_1 = {0}, s_2 = {0}, s_3 = {0};                                              \
        int64_t s = 0;                                                                             \
        for (; s + L <= w; s += L) {                                                               \
            V av, bv, dv;                                                                          \
            memcpy(&av, a + s, sizeof av), memcpy(&bv, b + s, sizeof bv), memcpy(&dv, d + s, sizeof dv); \
            const V ad = av * dv, dav = dv * (c1 + c3 * bv), dbv = dv * (c2 + c3 * av);            \
            s_0 += dv, s_1 += ad, s_2 += bv * dv, s_3 += ad * bv;                                  \
            memcpy(da + s, &dav, sizeof dav), memcpy(db + s, &dbv, sizeof dbv);                    \
        }                                                                                          \
        SUM4_##T(s_0, s_1, s_2, s_3, sums);                                                        \
        for (; s < w; s++) { /* a partial tile's last samples */                                  \
            const T ad = a[s] * d[s];                                                              \
            sums[0] += d[s], sums[1] += ad, sums[2] += b[s] * d[s], sums[3] += ad * b[s];          \
            da[s] = d[s] * (c1 + c3 * b[s]);                                                       \
            db[s] = d[s] * (c2 + c3 * a[s]);                                                       \
        }                                                                                          \
        memcpy(q + 4 * g, sums, sizeof sums);                                                      \
        if (need_gx) { /* one after the other: a gate may read the same row twice */               \
            T *ga = g_in + a_[g] * w, *gb = g_in + b_[g] * w;                                      \
            for (int64_t s = 0; s < w; s++) ga[s] += da[s];                                        \
            for (int64_t s = 0; s < w; s++) gb[s] += db[s];                                        \
        }                                                                                          \
        if (--left == 0) d += d_step, left = per;                                                  \
    }                                                                                              \
}
DEFINE_STACK_GATES(float, vec_f32)
DEFINE_STACK_GATES(double, vec_f64)

#define DEFINE_STACK(S, T, SUFFIX)                                                                 \
/* One layer's gates of a stack tile forward, w samples a row (a constant where inlined for
 * whole tiles): outputs into out, or, when out is NULL (the last layer), added up per class, one
 * class a ``per`` gates, into rows of sums sums_step apart. */                                    \
INLINE void stack_gates_forward_##SUFFIX(const S *restrict in, int64_t n, const int64_t *restrict a_, \
                                         const int64_t *restrict b_, const T *restrict cl,         \
                                         int64_t per, S *restrict out, T *restrict sums,           \
                                         int64_t sums_step, int64_t w) {                           \
    T acc[STACK_TILE];                                                                             \
    for (int64_t g = 0, left = per; g < n; g++) {                                                  \
        if (g + PF_DIST < n) PREFETCH_GATE(in, w, a_, b_, g + PF_DIST);                            \
        const S *a = in + a_[g] * w, *b = in + b_[g] * w;                                          \
        const T c0 = cl[4 * g], c1 = cl[4 * g + 1], c2 = cl[4 * g + 2], c3 = cl[4 * g + 3];        \
        T v[STACK_TILE];                                                                           \
        _Pragma("omp simd")                                                                        \
        for (int64_t s = 0; s < w; s++) {                                                          \
            const T va = ld_##SUFFIX(a[s]);                                                        \
            v[s] = c0 + c1 * va + (c2 + c3 * va) * ld_##SUFFIX(b[s]);                              \
        }                                                                                          \
        if (out != NULL) {                                                                         \
            for (int64_t s = 0; s < w; s++) out[g * w + s] = st_##SUFFIX(v[s]);                    \
            continue;                                                                              \
        }                                                                                          \
        if (left == per) memset(acc, 0, sizeof acc);                                               \
        for (int64_t s = 0; s < w; s++) acc[s] += v[s];                                            \
        if (--left == 0) memcpy(sums, acc, sizeof(T) * w), sums += sums_step, left = per;         \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
int stack_forward_##SUFFIX(const S *restrict x, int64_t batch, int64_t tile, int64_t L,            \
                           const int64_t *restrict n, const int64_t *restrict ia,                  \
                           const int64_t *restrict ib, const T *restrict c, int64_t k,             \
                           S *restrict acts, T *restrict sums, int threads) {                      \
    int64_t stored = 0;                                                                            \
    for (int64_t l = 0; l < L; l++) stored += n[l];                                                \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                              \
    for (int64_t t = 0; t < (batch + tile - 1) / tile; t++) {                                      \
        const int64_t s0 = t * tile, w = batch - s0 < tile ? batch - s0 : tile;                    \
        S *in = acts + s0 * stored;                                                                \
        for (int64_t i = 0; i < n[0]; i++) memcpy(in + i * w, x + i * batch + s0, sizeof(S) * w);  \
        int64_t first = 0;                                                                         \
        for (int64_t l = 1; l <= L; l++) {                                                         \
            const int64_t *a_ = ia + first, *b_ = ib + first;                                      \
            const T *cl = c + 4 * first;                                                           \
            S *out = l < L ? in + n[l - 1] * w : NULL;                                             \
            const int64_t per = l == L ? n[L] / k : 1;                                             \
            if (w == STACK_TILE)                                                                   \
                stack_gates_forward_##SUFFIX(in, n[l], a_, b_, cl, per, out, sums + s0, batch, STACK_TILE); \
            else                                                                                   \
                stack_gates_forward_##SUFFIX(in, n[l], a_, b_, cl, per, out, sums + s0, batch, w); \
            first += n[l];                                                                         \
            in = out;                                                                              \
        }                                                                                          \
    }                                                                                              \
    return 0;                                                                                      \
}                                                                                                  \
                                                                                                   \
int stack_backward_##SUFFIX(const S *restrict acts, int64_t batch, int64_t tile, int64_t L,        \
                            const int64_t *restrict n, const int64_t *restrict ia,                 \
                            const int64_t *restrict ib, const T *restrict c, int64_t k,            \
                            const T *restrict gsums, T *restrict gcp, T *restrict gc,              \
                            S *restrict gx, int threads) {                                         \
    int64_t stored = 0, gates = 0, widest = 0;                                                     \
    for (int64_t l = 0; l < L; l++) stored += n[l], widest = n[l] > widest ? n[l] : widest;        \
    for (int64_t l = 1; l <= L; l++) gates += n[l];                                                \
    const int64_t tiles = (batch + tile - 1) / tile;                                               \
    int failed = 0;                                                                                \
    _Pragma("omp parallel num_threads(threads)")                                                   \
    {                                                                                              \
    /* bfloat16 only: the layer's input rows widened to T. The input gradient and the output     \
     * gradient (the previous layer's input gradient): two buffers in turn */                      \
    const int widen = sizeof(S) != sizeof(T);                                                      \
    T *restrict in = widen ? scratch(sizeof(T) * widest * tile) : NULL;                            \
    T *bufs[2] = {scratch(sizeof(T) * widest * tile), scratch(sizeof(T) * widest * tile)};         \
    const int ready = bufs[0] != NULL && bufs[1] != NULL && (in != NULL || !widen);                \
    if (!ready) mark_failed(&failed);                                                              \
    _Pragma("omp for schedule(static)")                                                            \
    for (int64_t t = 0; t < tiles; t++) {                                                          \
        if (!ready) continue;                                                                      \
        const int64_t s0 = t * tile, w = batch - s0 < tile ? batch - s0 : tile;                    \
        const T *gy = NULL;                                                                        \
        int64_t first = gates, in_at = stored;                                                     \
        for (int64_t l = L; l >= 1; l--) {                                                         \
            first -= n[l];                                                                         \
            in_at -= n[l - 1];                                                                     \
            const S *restrict src = acts + s0 * stored + in_at * w;                                \
            const T *rows = (const T *)src;                                                        \
            if (widen) { /* bfloat16: widened once, read in order */                              \
                for (int64_t j = 0; j < n[l - 1] * w; j++) in[j] = ld_##SUFFIX(src[j]);            \
                rows = in;                                                                         \
            }                                                                                      \
            const int64_t *a_ = ia + first, *b_ = ib + first;                                      \
            const T *cl = c + 4 * first;                                                           \
            T *q = gcp + (t * gates + first) * 4, *g_in = bufs[l & 1];                             \
            const int need_gx = l > 1 || gx != NULL;                                               \
            if (need_gx) memset(g_in, 0, sizeof(T) * n[l - 1] * w);                                \
            /* gate g's output gradient: row g of gy, or its class's row of gsums for the last layer */ \
            const int64_t per = l == L ? n[L] / k : 1, d_step = l == L ? batch : w;                \
            const T *d = l == L ? gsums + s0 : gy;                                                 \
            if (w == STACK_TILE)                                                                   \
                stack_gates_backward_##T(rows, n[l], a_, b_, cl, d, d_step, per, need_gx, q, g_in, STACK_TILE); \
            else                                                                                   \
                stack_gates_backward_##T(rows, n[l], a_, b_, cl, d, d_step, per, need_gx, q, g_in, w); \
            gy = g_in;                                                                             \
        }                                                                                          \
        if (gx != NULL)                                                                            \
            for (int64_t i = 0; i < n[0]; i++)                                                     \
                for (int64_t s = 0; s < w; s++) gx[i * batch + s0 + s] = st_##SUFFIX(gy[i * w + s]); \
    }                                                                                              \
    _Pragma("omp for schedule(static)")                                                            \
    for (int64_t j = 0; j < gates * 4; j++) {                                                      \
        T sum = 0;                                                                                 \
        for (int64_t t = 0; t < tiles; t++) sum += gcp[t * gates * 4 + j];                         \
        gc[j] = sum;                                                                               \
    }                                                                                              \
    free(in);                                                                                      \
    free(bufs[0]);                                                                                 \
    free(bufs[1]);                                                                                 \
    }                                                                                              \
    return failed ? -1 : 0;                                                                        \
}


DEFINE_KERNELS(float, float, f32)
DEFINE_KERNELS(double, double, f64)
DEFINE_KERNELS(bf16, float, bf16)
DEFINE_GROUPED(float, float, f32)
DEFINE_GROUPED(double, double, f64)
DEFINE_GROUPED(bf16, float, bf16)
DEFINE_BACKWARD(float, float, f32)
DEFINE_BACKWARD(double, double, f64)
DEFINE_BACKWARD(bf16, float, bf16)
DEFINE_STACK(float, float, f32)
DEFINE_STACK(double, double, f64)
DEFINE_STACK(bf16, float, bf16)
DEFINE_SELECT(float, float, f32)
DEFINE_SELECT(double, double, f64)
DEFINE_SELECT(bf16, float, bf16)

/* Fused logic-tree convolution with OR pooling (LogicConv2d), feature-major as above.
 *
 * Output o = k * n_pos + p (kernel k, pooled position p) is the max over its W window slots of a
 * complete binary tree of L - 1 gates over L leaves. idx[(o * W + w) * L + l] is the input row of
 * leaf l in slot w: -1 reads 0 (zero padding), -2 in leaf 0 marks a slot outside the pooled map
 * (value 0, no gradient). Tree node j < L is leaf j; gate g reads nodes 2g and 2g + 1 and writes
 * node L + g, so the root is node 2L - 2. Coefficients c[(k * (L - 1) + g) * 4 + 0..3].
 * forward keeps only the pooled value and the winning slot (first maximum); backward recomputes
 * the trees, so memory does not grow with tree size. Samples go in chunks of CHUNK lanes (one
 * AVX-512 vector of floats). backward gives each thread a contiguous block of chunks (gx columns
 * have one writer; full chunks take a path with constant loop bounds), keeps per-lane coefficient
 * sums while it walks one kernel's positions, and adds per-thread sums in a fixed order. */

#define CHUNK 16
#define MAX_LEAVES 32

#define DEFINE_TREE(T, SUFFIX)                                                                      \
INLINE void tree_eval_##SUFFIX(const T *restrict x, int64_t batch, const int32_t *restrict li,     \
                               int L, const T *restrict c, int64_t s0, const int n,                \
                               T v[][CHUNK]) {                                                     \
    for (int l = 0; l < L; l++) {                                                                  \
        if (li[l] < 0) {                                                                           \
            for (int s = 0; s < n; s++) v[l][s] = 0;                                               \
        } else {                                                                                   \
            const T *row = x + (int64_t)li[l] * batch + s0;                                        \
            for (int s = 0; s < n; s++) v[l][s] = row[s];                                          \
        }                                                                                          \
    }                                                                                              \
    for (int g = 0; g < L - 1; g++) {                                                              \
        const T c0 = c[4 * g], c1 = c[4 * g + 1], c2 = c[4 * g + 2], c3 = c[4 * g + 3];            \
        const T *a = v[2 * g], *b = v[2 * g + 1];                                                  \
        T *out = v[L + g];                                                                         \
        _Pragma("omp simd")                                                                        \
        for (int s = 0; s < n; s++) out[s] = c0 + c1 * a[s] + (c2 + c3 * a[s]) * b[s];             \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
int conv_forward_##SUFFIX(const T *restrict x, int64_t batch, const int32_t *restrict idx,         \
                          int64_t n_out, int64_t n_pos, int W, int L, const T *restrict c,         \
                          T *restrict y, uint8_t *restrict arg, int threads) {                     \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                              \
    for (int64_t o = 0; o < n_out; o++) {                                                          \
        T v[2 * MAX_LEAVES][CHUNK];                                                                \
        const T *ck = c + (o / n_pos) * (L - 1) * 4;                                               \
        for (int64_t s0 = 0; s0 < batch; s0 += CHUNK) {                                            \
            const int n = batch - s0 < CHUNK ? (int)(batch - s0) : CHUNK;                          \
            T best[CHUNK];                                                                         \
            uint8_t win[CHUNK];                                                                    \
            for (int w = 0; w < W; w++) {                                                          \
                const int32_t *li = idx + (o * W + w) * L;                                         \
                T *val = v[2 * L - 2];                                                             \
                if (li[0] == -2) {                                                                 \
                    for (int s = 0; s < n; s++) val[s] = 0;                                        \
                } else {                                                                           \
                    tree_eval_##SUFFIX(x, batch, li, L, ck, s0, n, v);                             \
                }                                                                                  \
                for (int s = 0; s < n; s++) {                                                      \
                    if (w == 0 || val[s] > best[s]) {                                              \
                        best[s] = val[s];                                                          \
                        win[s] = (uint8_t)w;                                                       \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
            memcpy(y + o * batch + s0, best, sizeof(T) * n);                                       \
            if (arg) memcpy(arg + o * batch + s0, win, n);                                         \
        }                                                                                          \
    }                                                                                              \
    return 0;                                                                                      \
}                                                                                                  \
                                                                                                   \
/* gradient of one slot's tree over one chunk; lane sums of the coefficient gradient into acc */   \
INLINE void tree_backward_##SUFFIX(const T *restrict x, int64_t batch, const int32_t *restrict li, \
                                   int L, const T *restrict ck, int64_t s0, const int n,           \
                                   T v[][CHUNK], T gv[][CHUNK], T acc[][4][CHUNK],                 \
                                   T *restrict gx) {                                               \
    tree_eval_##SUFFIX(x, batch, li, L, ck, s0, n, v);                                             \
    for (int g = L - 2; g >= 0; g--) {                                                             \
        const T c1 = ck[4 * g + 1], c2 = ck[4 * g + 2], c3 = ck[4 * g + 3];                        \
        const T *a = v[2 * g], *b = v[2 * g + 1], *d = gv[L + g];                                  \
        T *ga = gv[2 * g], *gb = gv[2 * g + 1];                                                    \
        _Pragma("omp simd")                                                                        \
        for (int s = 0; s < n; s++) {                                                              \
            const T ad = a[s] * d[s];                                                              \
            acc[g][0][s] += d[s];                                                                  \
            acc[g][1][s] += ad;                                                                    \
            acc[g][2][s] += b[s] * d[s];                                                           \
            acc[g][3][s] += ad * b[s];                                                             \
            ga[s] = d[s] * (c1 + c3 * b[s]);                                                       \
            gb[s] = d[s] * (c2 + c3 * a[s]);                                                       \
        }                                                                                          \
    }                                                                                              \
    if (gx)                                                                                        \
        for (int l = 0; l < L; l++) {                                                              \
            if (li[l] < 0) continue;                                                               \
            T *row = gx + (int64_t)li[l] * batch + s0;                                             \
            _Pragma("omp simd")                                                                    \
            for (int s = 0; s < n; s++) row[s] += gv[l][s];                                        \
        }                                                                                          \
}                                                                                                  \
                                                                                                   \
/* all slots of one output over one chunk: the gradient reaches the winning slot only */          \
INLINE void pool_backward_##SUFFIX(const T *restrict x, int64_t batch, const int32_t *restrict io, \
                                   int W, int L, const T *restrict ck, int64_t s0, const int n,    \
                                   const T *restrict go, const uint8_t *restrict ao,               \
                                   T v[][CHUNK], T gv[][CHUNK], T acc[][4][CHUNK],                 \
                                   T *restrict gx) {                                               \
    for (int w = 0; w < W; w++) {                                                                  \
        const int32_t *li = io + w * L;                                                            \
        if (li[0] == -2) continue;                                                                 \
        int any = 0;                                                                               \
        T *root = gv[2 * L - 2];                                                                   \
        for (int s = 0; s < n; s++) {                                                              \
            const int sel = ao == NULL || ao[s] == w;                                              \
            root[s] = sel ? go[s] : 0;                                                             \
            any |= sel;                                                                            \
        }                                                                                          \
        if (any) tree_backward_##SUFFIX(x, batch, li, L, ck, s0, n, v, gv, acc, gx);               \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
int conv_backward_##SUFFIX(const T *restrict x, int64_t batch, int64_t n_in,                       \
                           const int32_t *restrict idx, int64_t n_out, int64_t n_pos, int W,       \
                           int L, int64_t n_kernels, const T *restrict c, const T *restrict gy,    \
                           const uint8_t *restrict arg, T *restrict gc, T *restrict gx,            \
                           int threads) {                                                          \
    const int G = L - 1;                                                                           \
    const int64_t n_coef = n_kernels * G * 4, n_chunks = (batch + CHUNK - 1) / CHUNK;              \
    double *part = scratch(sizeof(double) * threads * n_coef);                                     \
    if (part == NULL) return -1;                                                                   \
    memset(part, 0, sizeof(double) * threads * n_coef);                                            \
    _Pragma("omp parallel num_threads(threads)")                                                   \
    {                                                                                              \
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();                           \
        double *mine = part + (int64_t)t * n_coef;                                                 \
        T v[2 * MAX_LEAVES][CHUNK], gv[2 * MAX_LEAVES][CHUNK], acc[MAX_LEAVES][4][CHUNK];          \
        /* this thread's contiguous block of chunks: columns [c0, c1) */                          \
        const int64_t first = n_chunks * t / nt, last = n_chunks * (t + 1) / nt;                   \
        const int64_t c0 = first * CHUNK, c1 = last * CHUNK < batch ? last * CHUNK : batch;        \
        if (gx && c1 > c0)                                                                         \
            for (int64_t i = 0; i < n_in; i++) memset(gx + i * batch + c0, 0, sizeof(T) * (c1 - c0)); \
        for (int64_t k = 0; k < n_kernels && c1 > c0; k++) {                                       \
            const T *ck = c + k * G * 4;                                                           \
            memset(acc, 0, sizeof(acc));                                                           \
            for (int64_t o = k * n_pos; o < (k + 1) * n_pos; o++) {                                \
                const int32_t *io = idx + o * W * L;                                               \
                for (int64_t s0 = c0; s0 < c1; s0 += CHUNK) {                                      \
                    const int n = c1 - s0 < CHUNK ? (int)(c1 - s0) : CHUNK;                        \
                    const T *go = gy + o * batch + s0;                                             \
                    const uint8_t *ao = arg ? arg + o * batch + s0 : NULL;                         \
                    if (n == CHUNK)                                                                \
                        pool_backward_##SUFFIX(x, batch, io, W, L, ck, s0, CHUNK, go, ao, v, gv,   \
                                               acc, gx);                                           \
                    else                                                                           \
                        pool_backward_##SUFFIX(x, batch, io, W, L, ck, s0, n, go, ao, v, gv, acc,  \
                                               gx);                                                \
                }                                                                                  \
            }                                                                                      \
            double *mk = mine + k * G * 4;                                                         \
            for (int g = 0; g < G; g++)                                                            \
                for (int j = 0; j < 4; j++) {                                                      \
                    double sum = 0;                                                                \
                    for (int l = 0; l < CHUNK; l++) sum += acc[g][j][l];                           \
                    mk[4 * g + j] += sum;                                                          \
                }                                                                                  \
        }                                                                                          \
    }                                                                                              \
    for (int64_t i = 0; i < n_coef; i++) {                                                         \
        double s = 0;                                                                              \
        for (int t = 0; t < threads; t++) s += part[(int64_t)t * n_coef + i];                      \
        gc[i] = (T)s;                                                                              \
    }                                                                                              \
    free(part);                                                                                    \
    return 0;                                                                                      \
}

DEFINE_TREE(float, f32)
DEFINE_TREE(double, f64)
