/* Runtime of an exported diffgates model (C99): encoder, bit-sliced gates, class counts, argmax.
 * Pasted after the generated tables (DG_* macros and dg_* arrays) and bitslice.h. */

int dg_predict(const float *x, long n, int32_t *counts, int32_t *classes) {
    const int n_planes = bs_n_planes(DG_GROUP_POS + DG_GROUP_NEG);
    WORD planes[4 + 16];
    int32_t block[64 * DG_N_CLASSES];
    WORD *S;
    long i, s0;
    int64_t j;
    int c, p, s;
    for (i = 0; i < n * (long)DG_N_FEATURES; i++)
        if (!isfinite(x[i])) return DG_ERR_NONFINITE;
    S = (WORD *)malloc(sizeof(WORD) * DG_N_SLOTS);
    if (!S) return DG_ERR_NOMEM;
    S[DG_N_SLOTS - 1] = 0; /* padding slot for the class groups, never written by a gate */
    for (s0 = 0; s0 < n; s0 += 64) {
        const int rows = n - s0 < 64 ? (int)(n - s0) : 64;
        for (j = 0; j < DG_N_INPUTS; j++) S[j] = 0;
        for (s = 0; s < rows; s++) { /* row by row: each sample's features are read in order */
            const float *row = x + (s0 + s) * DG_N_FEATURES;
            for (j = 0; j < DG_N_INPUTS; j++) S[j] |= (WORD)(row[dg_in_feature[j]] > dg_in_threshold[j]) << s;
        }
        bs_eval_gates(S, dg_run_op, dg_run_len, DG_N_RUNS, dg_a, dg_b, dg_dst);
        for (c = 0; c < DG_N_CLASSES; c++) {
            bs_group_planes(S, dg_out_idx + (long)c * (DG_GROUP_POS + DG_GROUP_NEG), DG_GROUP_POS, DG_GROUP_NEG,
                            n_planes, planes);
            for (s = 0; s < rows; s++) {
                int32_t v = dg_out_offset[c];
                for (p = 0; p < 4 + n_planes; p++) v += (int32_t)((planes[p] >> s) & 1) << p;
                block[s * DG_N_CLASSES + c] = v;
            }
        }
        for (s = 0; s < rows; s++) {
            const int32_t *row = block + s * DG_N_CLASSES;
            int best = 0;
            for (c = 1; c < DG_N_CLASSES; c++)
                if (row[c] > row[best]) best = c;
            if (classes) classes[s0 + s] = best;
            if (counts) memcpy(counts + (s0 + s) * DG_N_CLASSES, row, sizeof(int32_t) * DG_N_CLASSES);
        }
    }
    free(S);
    return 0;
}
