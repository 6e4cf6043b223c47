/* Example program for an exported diffgates model: reads samples from stdin (whitespace-separated
 * floats, DG_N_FEATURES per sample) and prints, per sample, the predicted class (DG_ARGMAX models)
 * and the counts. Exit code 1 on malformed input. */
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

int main(void) {
    long cap = 1024, n = 0, k;
    float *x = (float *)malloc(sizeof(float) * cap * DG_N_FEATURES);
    int32_t *counts, *classes;
    int f, rc;
    if (!x) return 1;
    for (;;) {
        if (n == cap) {
            float *grown = (float *)realloc(x, sizeof(float) * (cap *= 2) * DG_N_FEATURES);
            if (!grown) return 1;
            x = grown;
        }
        for (f = 0; f < DG_N_FEATURES; f++) {
            rc = scanf("%f", &x[n * DG_N_FEATURES + f]);
            if (rc != 1) break;
        }
        if (f == 0 && rc == EOF) break;
        if (f != DG_N_FEATURES) {
            fprintf(stderr, "error: sample %ld has %d readable features, expected %d\n", n, f, DG_N_FEATURES);
            return 1;
        }
        n++;
    }
    counts = (int32_t *)malloc(sizeof(int32_t) * (n ? n : 1) * DG_N_CLASSES);
    classes = (int32_t *)malloc(sizeof(int32_t) * (n ? n : 1));
    if (!counts || !classes) return 1;
    rc = dg_predict(x, n, counts, classes);
    if (rc != 0) {
        fprintf(stderr, "error: %s\n", rc == DG_ERR_NONFINITE ? "input contains NaN or infinite values" : "out of memory");
        return 1;
    }
    for (k = 0; k < n; k++) {
        if (DG_ARGMAX) printf("%d ", (int)classes[k]);
        for (f = 0; f < DG_N_CLASSES; f++) printf(f ? " %d" : "%d", (int)counts[k * DG_N_CLASSES + f]);
        printf("\n");
    }
    free(x);
    free(counts);
    free(classes);
    return 0;
}
