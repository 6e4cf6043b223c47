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
 * Each function exists for float and double (suffix _f32 / _f64). */
#include <stdint.h>
#include <string.h>

#define DEFINE_KERNELS(T, SUFFIX)                                                                  \
void dense_forward_##SUFFIX(const T *restrict x, int64_t batch, const int64_t *restrict ia,       \
                            const int64_t *restrict ib, const T *restrict c, int64_t n_out,        \
                            T *restrict y, int threads) {                                          \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                              \
    for (int64_t g = 0; g < n_out; g++) {                                                          \
        const T *a = x + ia[g] * batch, *b = x + ib[g] * batch;                                    \
        const T c0 = c[4 * g], c1 = c[4 * g + 1], c2 = c[4 * g + 2], c3 = c[4 * g + 3];            \
        T *out = y + g * batch;                                                                    \
        _Pragma("omp simd")                                                                        \
        for (int64_t s = 0; s < batch; s++) out[s] = c0 + c1 * a[s] + (c2 + c3 * a[s]) * b[s];     \
    }                                                                                              \
}                                                                                                  \
                                                                                                   \
void dense_grad_coef_##SUFFIX(const T *restrict x, int64_t batch, const int64_t *restrict ia,     \
                              const int64_t *restrict ib, const T *restrict gy, int64_t n_out,     \
                              T *restrict gc, int threads) {                                       \
    _Pragma("omp parallel for schedule(static) num_threads(threads)")                              \
    for (int64_t g = 0; g < n_out; g++) {                                                          \
        const T *a = x + ia[g] * batch, *b = x + ib[g] * batch, *d = gy + g * batch;               \
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                          \
        _Pragma("omp simd reduction(+ : s0, s1, s2, s3)")                                          \
        for (int64_t s = 0; s < batch; s++) {                                                      \
            T ad = a[s] * d[s];                                                                    \
            s0 += d[s];                                                                            \
            s1 += ad;                                                                              \
            s2 += b[s] * d[s];                                                                     \
            s3 += ad * b[s];                                                                       \
        }                                                                                          \
        gc[4 * g] = s0; gc[4 * g + 1] = s1; gc[4 * g + 2] = s2; gc[4 * g + 3] = s3;               \
    }                                                                                              \
}

#define DEFINE_BACKWARD(T, SUFFIX)                                                                  \
void dense_backward_##SUFFIX(const T *restrict x, int64_t batch, const int64_t *restrict ia,          \
                            const int64_t *restrict ib, const T *restrict c, const T *restrict gy,     \
                            int64_t n_in, const int64_t *restrict rev_ptr,                             \
                            const int64_t *restrict rev_gate, const uint8_t *restrict rev_side,        \
                            T *restrict gc, T *restrict gx, int threads) {                             \
    _Pragma("omp parallel for schedule(dynamic, 16) num_threads(threads)")                             \
    for (int64_t i = 0; i < n_in; i++) {                                                               \
        T *out = gx + i * batch;                                                                       \
        const T *xi = x + i * batch;                                                                   \
        memset(out, 0, sizeof(T) * batch);                                                             \
        for (int64_t k = rev_ptr[i]; k < rev_ptr[i + 1]; k++) {                                        \
            const int64_t g = rev_gate[k];                                                             \
            const T *d = gy + g * batch;                                                               \
            const T c3 = c[4 * g + 3];                                                                 \
            if (rev_side[k] == 0) { /* x[i] is A, other is B */                                        \
                const T *b = x + ib[g] * batch, c1 = c[4 * g + 1];                                     \
                T q0 = 0, q1 = 0, q2 = 0, q3 = 0;                                                      \
                _Pragma("omp simd reduction(+ : q0, q1, q2, q3)")                                      \
                for (int64_t s = 0; s < batch; s++) {                                                  \
                    const T ad = xi[s] * d[s];                                                         \
                    q0 += d[s];                                                                        \
                    q1 += ad;                                                                          \
                    q2 += b[s] * d[s];                                                                 \
                    q3 += ad * b[s];                                                                   \
                    out[s] += d[s] * (c1 + c3 * b[s]);                                                 \
                }                                                                                      \
                gc[4 * g] = q0; gc[4 * g + 1] = q1; gc[4 * g + 2] = q2; gc[4 * g + 3] = q3;           \
            } else { /* x[i] is B, other is A */                                                       \
                const T *a = x + ia[g] * batch, c2 = c[4 * g + 2];                                     \
                _Pragma("omp simd")                                                                    \
                for (int64_t s = 0; s < batch; s++) out[s] += d[s] * (c2 + c3 * a[s]);                 \
            }                                                                                          \
        }                                                                                              \
    }                                                                                                  \
}

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(double, f64)
DEFINE_BACKWARD(float, f32)
DEFINE_BACKWARD(double, f64)
