/* Bit-sliced class counting, shared by the in-package executor (WORD = one vector register: 512
 * bits with AVX-512, 256 otherwise) and the exported C99 library (WORD = uint64_t), and the
 * exported library's gate evaluation (left out where BS_COUNTS_ONLY is defined: the executor
 * runs its gates its own way). The includer defines WORD and BS_ZERO, and may count in a
 * narrower CWORD (a part of each WORD; zero CWORD_ZERO) than the gates run in. Each bit of a
 * WORD is one sample.
 *
 * Gates come as runs of equal ops (run_op, run_len); gate k reads slots A[k], B[k] of S and
 * writes slot Dst[k] (slots are reused once a signal is dead, which keeps S small enough for
 * the cache). Ops follow the standard 16-gate numbering. */

#ifndef BS_COUNTS_ONLY
#define BS_RUN(expr)                                  \
    for (; k < end; k++) {                            \
        const WORD a = S[A[k]], b = S[B[k]];          \
        (void)a;                                      \
        (void)b;                                      \
        S[Dst[k]] = (expr);                           \
    }                                                 \
    break

/* Gates k .. end - 1, all of op `op`. */
static void bs_eval_run(WORD *S, int op, int64_t k, int64_t end, const int32_t *A, const int32_t *B,
                        const int32_t *Dst) {
    const WORD zero = BS_ZERO, ones = ~zero;
    switch (op) {
        case 0: BS_RUN(zero);
        case 1: BS_RUN(a & b);
        case 2: BS_RUN(a & ~b);
        case 3: BS_RUN(a);
        case 4: BS_RUN(~a & b);
        case 5: BS_RUN(b);
        case 6: BS_RUN(a ^ b);
        case 7: BS_RUN(a | b);
        case 8: BS_RUN(~(a | b));
        case 9: BS_RUN(~(a ^ b));
        case 10: BS_RUN(~b);
        case 11: BS_RUN(a | ~b);
        case 12: BS_RUN(~a);
        case 13: BS_RUN(~a | b);
        case 14: BS_RUN(~(a & b));
        default: BS_RUN(ones);
    }
}

static void bs_eval_gates(WORD *S, const uint8_t *run_op, const int32_t *run_len, int64_t n_runs,
                          const int32_t *A, const int32_t *B, const int32_t *Dst) {
    int64_t k = 0, r;
    for (r = 0; r < n_runs; r++) {
        bs_eval_run(S, run_op[r], k, k + run_len[r], A, B, Dst);
        k += run_len[r];
    }
}
#endif

#ifndef CWORD
#define CWORD WORD
#define CWORD_ZERO BS_ZERO
#endif

/* Carry-save adder: h:l = a + b + c; and h:l = a + ~b + ~c, for inputs counted inverted. An
 * includer may define both (as ternary-logic instructions, say). */
#ifndef BS_CSA
#define BS_CSA(h, l, a, b, c)                  \
    do {                                       \
        const CWORD a_ = (a), b_ = (b), c_ = (c); \
        const CWORD u_ = a_ ^ b_;              \
        h = (a_ & b_) | (u_ & c_);             \
        l = u_ ^ c_;                           \
    } while (0)
#define BS_CSA_NOT(h, l, a, b, c) BS_CSA(h, l, a, ~(b), ~(c))
#endif

/* Levels of the adder tree above the sixteens: each pairs two carries of its weight with its own
 * sum bit, so the planes take a carry once per 16 << BS_LEVELS signals instead of every 16. The
 * executor's vector build takes 2; one 64-bit word a step, as in the exported C, runs fastest
 * without (0). */
#ifndef BS_LEVELS
#define BS_LEVELS 0
#endif

/* Add `carry` (weight 2^(4 + from)) into the planes 4 + from .. 4 + n_planes - 1. */
static void bs_ripple(CWORD *planes, CWORD carry, int from, int n_planes) {
    int p;
    for (p = from; p < n_planes; p++) {
        const CWORD t = planes[4 + p] & carry;
        planes[4 + p] ^= carry;
        carry = t;
    }
}

/* Count per sample the 1s among signals idx[0 .. n_pos) and the 0s among idx[n_pos .. n_pos +
 * n_neg) (both multiples of 16), as bit planes: count = sum over p of bit(planes[p]) << p, for
 * p < 4 + n_planes (Harley-Seal adder tree; the inverted part adds every signal through ~). */
static void bs_group_planes(const CWORD *S, const int32_t *idx, int64_t n_pos, int64_t n_neg, int n_planes,
                            CWORD *planes) {
    const CWORD zero = CWORD_ZERO;
    CWORD ones = zero, twos = zero, fours = zero, eights = zero;
    /* level l (weight 2^(4 + l)): its sum bit, and a carry waiting for a second one, which it
     * holds where bit l of the count of groups of 16 done is set (the levels count in binary) */
    CWORD sum[BS_LEVELS + 1], waiting[BS_LEVELS + 1];
    int64_t i;
    int p, l;
    for (p = 0; p < n_planes; p++) planes[4 + p] = zero;
    for (l = 0; l < BS_LEVELS; l++) sum[l] = waiting[l] = zero;
    for (i = 0; i < n_pos + n_neg; i += 16) {
        CWORD twosA, twosB, foursA, foursB, eightsA, eightsB, carry;
        const int32_t *q = idx + i;
/* Eight signals from q[j] into the tree, giving EIGHTS; each pair through CSA_IN (BS_CSA, or
 * BS_CSA_NOT to count 0s). */
#define BS_EIGHT(CSA_IN, j, EIGHTS)                            \
    do {                                                       \
        CSA_IN(twosA, ones, ones, S[q[j]], S[q[j + 1]]);       \
        CSA_IN(twosB, ones, ones, S[q[j + 2]], S[q[j + 3]]);   \
        BS_CSA(foursA, twos, twos, twosA, twosB);              \
        CSA_IN(twosA, ones, ones, S[q[j + 4]], S[q[j + 5]]);   \
        CSA_IN(twosB, ones, ones, S[q[j + 6]], S[q[j + 7]]);   \
        BS_CSA(foursB, twos, twos, twosA, twosB);              \
        BS_CSA(EIGHTS, fours, fours, foursA, foursB);          \
    } while (0)
        if (i < n_pos) {
            BS_EIGHT(BS_CSA, 0, eightsA);
            BS_EIGHT(BS_CSA, 8, eightsB);
        } else {
            BS_EIGHT(BS_CSA_NOT, 0, eightsA);
            BS_EIGHT(BS_CSA_NOT, 8, eightsB);
        }
#undef BS_EIGHT
        BS_CSA(carry, eights, eights, eightsA, eightsB); /* the sixteens */
        for (l = 0; l < BS_LEVELS && ((i / 16 >> l) & 1); l++) /* a second carry of this weight: add the three */
            BS_CSA(carry, sum[l], sum[l], waiting[l], carry);
        if (l < BS_LEVELS)
            waiting[l] = carry;
        else
            bs_ripple(planes, carry, BS_LEVELS, n_planes);
    }
    for (l = 0; l < BS_LEVELS; l++) {
        bs_ripple(planes, sum[l], l, n_planes);
        if (((n_pos + n_neg) / 16 >> l) & 1) bs_ripple(planes, waiting[l], l, n_planes);
    }
    planes[0] = ones;
    planes[1] = twos;
    planes[2] = fours;
    planes[3] = eights;
}

/* Bit planes needed for the count of sixteens among len signals. */
static int bs_n_planes(int64_t len) {
    int n = 0;
    while ((1LL << n) <= len / 16) n++;
    return n;
}
