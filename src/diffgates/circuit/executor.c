/* Bit-sliced circuit executor: BLOCK samples per block, one BLOCK-bit vector per signal.
 *
 * The prepared program lists gates sorted by logic level, then by op, as runs of equal ops, so
 * each run is a tight branch-free loop; besides the 16 two-input gates an op may be a
 * three-input function (a gate fused with a gate that only it reads: one instruction with
 * AVX-512). Each gate's four slot numbers (three read, one written) come as one 64-bit word, or
 * as four int32 in the WIDE_SLOTS build for buffers of more than 65,536 slots. Per block: pack
 * input bits, a byte each or eight a byte (64x64 bit-matrix transposes), or encode raw uint8 /
 * float32 features straight into them (compares on feature columns; with AVX-512, float32
 * features first become one byte each, their level among the circuit's thresholds), evaluate
 * the runs, counting each class's output bits once the runs it reads have run (the gates only
 * one class counts come last, class by class, so each class counts them from the caches) with a
 * Harley-Seal carry-save adder tree, and spread the bit planes into per-sample counters;
 * packing and counting go a CBLOCK part of each signal at a time. OpenMP threads claim blocks
 * one ahead, each with its own signal buffer; in the AHEAD build the gates prefetch the next
 * block's input rows; the PHASES build times each block's phases (benchmarks/executor_phases.py). */
#if defined(__GNUC__) && !defined(__clang__)
/* Loops start on a 64-byte boundary: the gate loops are a few dozen bytes each, and where one
 * straddles a fetch boundary the whole executor ran up to 5 % slower. */
#pragma GCC optimize("align-loops=64")
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef BUFFERS_FAIL
#include <omp.h>
#endif
#if defined(__SSE2__) || defined(__AVX2__)
#include <immintrin.h>
#endif

/* 64-bit words per signal: 512 bits, one AVX-512 register or two AVX2 ones (each gate's slot
 * numbers are loaded once for 512 samples; a narrower signal loads them twice as often, a
 * wider one only grows the signal buffer, which wide layers need to keep in the L2 cache). The
 * class counts run in CWORDS-word parts of a signal: a Harley-Seal tree of 512-bit values needs
 * more than AVX2's 16 registers. */
#ifndef WORDS
#define WORDS 8
#endif
#ifndef CWORDS
#if defined(__AVX512F__) || WORDS < 4
#define CWORDS WORDS
#else
#define CWORDS 4
#endif
#endif
#define BLOCK (64 * WORDS)
#define CBLOCK (64 * CWORDS)
#define PARTS (WORDS / CWORDS)
typedef uint64_t vec __attribute__((vector_size(8 * WORDS)));   /* one signal of BLOCK samples */
typedef uint64_t cvec __attribute__((vector_size(8 * CWORDS))); /* CBLOCK of them, as counted */
typedef uint64_t v512 __attribute__((vector_size(64)));       /* 8 rows of a 64 x 64 bit tile */
typedef uint16_t u16x8 __attribute__((vector_size(16)));

static u16x8 SPREAD[256]; /* byte -> its 8 bits as 8 uint16 lanes (LSB first) */

static void init_spread(void) {
    for (int v = 0; v < 256; v++)
        for (int i = 0; i < 8; i++) SPREAD[v][i] = (v >> i) & 1;
}

typedef int64_t lanes __attribute__((vector_size(64)));

/* In-place transpose of a 64x64 bit matrix held as 8 vectors (row 8r + l is lane l of R[r]):
 * afterwards bit s of row k is old bit k of row s. Three stages swap between vectors, three
 * between lanes of one vector. */
static __attribute__((unused)) void transpose64(v512 R[8]) { /* unused where the GFNI one below builds */
    uint64_t m = 0x00000000FFFFFFFFULL;
    for (int r = 0; r < 4; r++) { v512 t = ((R[r] >> 32) ^ R[r + 4]) & m; R[r] ^= t << 32; R[r + 4] ^= t; }
    m = 0x0000FFFF0000FFFFULL;
    for (int r = 0; r < 8; r += (r & 1) ? 3 : 1) { v512 t = ((R[r] >> 16) ^ R[r + 2]) & m; R[r] ^= t << 16; R[r + 2] ^= t; }
    m = 0x00FF00FF00FF00FFULL;
    for (int r = 0; r < 8; r += 2) { v512 t = ((R[r] >> 8) ^ R[r + 1]) & m; R[r] ^= t << 8; R[r + 1] ^= t; }
    const lanes sw4 = {4, 5, 6, 7, 0, 1, 2, 3}, sw2 = {2, 3, 0, 1, 6, 7, 4, 5}, sw1 = {1, 0, 3, 2, 5, 4, 7, 6};
    const v512 low4 = {~0ULL, ~0ULL, ~0ULL, ~0ULL, 0, 0, 0, 0};
    const v512 low2 = {~0ULL, ~0ULL, 0, 0, ~0ULL, ~0ULL, 0, 0};
    const v512 low1 = {~0ULL, 0, ~0ULL, 0, ~0ULL, 0, ~0ULL, 0};
#define LANE_STAGE(J, MASK, SW, LOW)                                                   \
    for (int r = 0; r < 8; r++) {                                                      \
        v512 t = ((R[r] >> J) ^ __builtin_shuffle(R[r], SW)) & (MASK) & LOW;            \
        R[r] ^= (t << J) ^ __builtin_shuffle(t, SW);                                   \
    }
    LANE_STAGE(4, 0x0F0F0F0F0F0F0F0FULL, sw4, low4)
    LANE_STAGE(2, 0x3333333333333333ULL, sw2, low2)
    LANE_STAGE(1, 0x5555555555555555ULL, sw1, low1)
#undef LANE_STAGE
}

/* Transpose 8 x 8 qwords in place (lane c of T[r] <-> lane r of T[c]): three stages, each
 * swapping the off-diagonal blocks of a 2 x 2 block split. */
static lanes QT_LOW[3], QT_HIGH[3];

static void init_qword_transpose(void) {
    for (int s = 0, j = 4; j; j >>= 1, s++)
        for (int c = 0; c < 8; c++) {
            QT_LOW[s][c] = (c & j) ? 8 + (c ^ j) : c;
            QT_HIGH[s][c] = (c & j) ? 8 + c : (c ^ j);
        }
}

static inline void qword_transpose8(v512 T[8]) {
    for (int s = 0, j = 4; j; j >>= 1, s++)
        for (int r = 0; r < 8; r++)
            if (!(r & j)) {
                const v512 a = T[r], b = T[r | j];
                T[r] = __builtin_shuffle(a, b, QT_LOW[s]);
                T[r | j] = __builtin_shuffle(a, b, QT_HIGH[s]);
            }
}

#if defined(__GFNI__) && defined(__AVX512VBMI__)
/* The same transpose in ~50 instructions: byte shuffles (VBMI) regroup the 8x8-bit blocks, one
 * GF(2) affine instruction transposes the bits inside every block, and a qword transpose across
 * the 8 vectors puts the blocks in place. */
typedef uint8_t v64u8 __attribute__((vector_size(64)));
static v64u8 BLOCK_GATHER, BLOCK_SCATTER;

static void init_transpose(void) {
    for (int l = 0; l < 8; l++)
        for (int c = 0; c < 8; c++) {
            BLOCK_GATHER[8 * c + (7 - l)] = 8 * l + c; /* qword c <- byte c of rows l, reversed */
            BLOCK_SCATTER[8 * l + c] = 8 * c + l;
        }
}

static void transpose64_fast(v512 R[8]) {
    const __m512i unit = _mm512_set1_epi64(0x8040201008040201LL);
    v512 T[8];
    for (int r = 0; r < 8; r++) {
        const v64u8 p = __builtin_shuffle((v64u8)R[r], BLOCK_GATHER);
        T[r] = (v512)_mm512_gf2p8affine_epi64_epi8(unit, (__m512i)p, 0);
    }
    qword_transpose8(T);
    for (int c = 0; c < 8; c++) R[c] = (v512)__builtin_shuffle((v64u8)T[c], BLOCK_SCATTER);
}
#define TRANSPOSE64 transpose64_fast
#else
static void init_transpose(void) {}
#define TRANSPOSE64 transpose64
#endif

/* 64 bytes (or the first lim) -> bit k set where byte k is non-zero. */
static inline uint64_t nonzero_mask(const uint8_t *p, int lim) {
#if defined(__AVX512BW__)
    __m512i v = lim == 64 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(~0ULL >> (64 - lim), p);
    return _mm512_test_epi8_mask(v, v);
#else
    uint64_t word = 0;
    int k = 0;
#if defined(__AVX2__)
    for (; k + 32 <= lim; k += 32) { /* byte compares with zero, gathered into 32 bits */
        const __m256i v = _mm256_loadu_si256((const __m256i *)(p + k));
        word |= (uint64_t)(uint32_t)~_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, _mm256_setzero_si256())) << k;
    }
    for (; k + 16 <= lim; k += 16) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(p + k));
        word |= (uint64_t)(uint16_t)~_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) << k;
    }
#endif
    for (; k < lim; k++) word |= (uint64_t)(p[k] != 0) << k;
    return word;
#endif
}

typedef union { v512 v[8]; uint64_t w[64]; } tile; /* 64 x 64 bits */

/* Where the input bits come from. Kind 0: bits (uint8 0/1, n_in a row); kind 3: the same bits
 * packed, eight a byte (ceil(n_in / 8) bytes a row; row_masks). Kinds 1 and 2: raw
 * features (uint8 or float32, n_features a row), encoded on the way: input j is
 * x[feature[j]] > threshold[j], compared in float32 like the circuit's encoder; for uint8 that
 * is x >= least[j] (0 .. 255, or 256: never), compared on the bytes, and for float32 through
 * levels (levels not NULL: see level_rows) level >= least[j], the rank of its threshold. */
typedef struct {
    const void *x;
    int kind;
    int64_t n_in, n_features;
    const int32_t *feature;
    const float *threshold;
    const int16_t *least;
    const float *levels;     /* float32 through levels (LEVELS): see level_rows */
    const int32_t *level_at;
} source;

/* The smallest byte value above t (x > t in float32 for integer x), 256 where none is. */
static int16_t least_above(float t) {
    if (t != t || t >= 255.0f) return 256; /* NaN compares false */
    return t < 0.0f ? 0 : (int16_t)((int)t + 1);
}

/* Feature f of row s (float32 rows of nf). */
static inline float feature_at(const source *src, int64_t s, int64_t f) {
    return ((const float *)src->x)[s * src->n_features + f];
}

#if defined(__AVX2__)
/* Features f0 .. f0 + 7 of rows r .. r + 7 as 8 vectors, transposed: R[i] holds feature f0 + i. */
static inline void columns8(const source *src, int64_t r, int64_t f0, __m256 R[8]) {
    const int64_t nf = src->n_features;
    __m256 a[8], b[8];
    for (int i = 0; i < 8; i++) a[i] = _mm256_loadu_ps((const float *)src->x + (r + i) * nf + f0);
    for (int i = 0; i < 8; i += 2) {
        b[i] = _mm256_unpacklo_ps(a[i], a[i + 1]);
        b[i + 1] = _mm256_unpackhi_ps(a[i], a[i + 1]);
    }
    for (int i = 0; i < 8; i += 4)
        for (int j = 0; j < 2; j++) {
            a[i + 2 * j] = _mm256_shuffle_ps(b[i + j], b[i + j + 2], 0x44);
            a[i + 2 * j + 1] = _mm256_shuffle_ps(b[i + j], b[i + j + 2], 0xEE);
        }
    for (int i = 0; i < 4; i++) {
        R[i] = _mm256_permute2f128_ps(a[i], a[i + 4], 0x20);
        R[i + 4] = _mm256_permute2f128_ps(a[i], a[i + 4], 0x31);
    }
}
#endif

#if defined(__SSE2__)
/* Transpose 16 x 16 bytes in place: four rounds of interleaving rows i and i + 8. */
static inline void transpose16(__m128i a[16]) {
    for (int round = 0; round < 4; round++) {
        __m128i b[16];
        for (int i = 0; i < 8; i++) {
            b[2 * i] = _mm_unpacklo_epi8(a[i], a[i + 8]);
            b[2 * i + 1] = _mm_unpackhi_epi8(a[i], a[i + 8]);
        }
        for (int i = 0; i < 16; i++) a[i] = b[i];
    }
}
#endif

/* How many of the `span` rows from row r exist (of n_rows). */
static inline int64_t rows_within(int64_t n_rows, int64_t r, int64_t span) {
    return r >= n_rows ? 0 : (n_rows - r < span ? n_rows - r : span);
}

/* ... of the 64 rows of a tile, and of the BLOCK rows of a block. */
static inline int rows_from(int64_t n_rows, int64_t r) { return (int)rows_within(n_rows, r, 64); }
static inline int64_t block_rows(int64_t n_rows, int64_t r) { return rows_within(n_rows, r, BLOCK); }

/* Columns read 64 rows side by side, more streams than the hardware prefetcher follows: the next
 * rows (n bytes at p) are fetched in `slices`, slice i with the i-th block of columns (4x faster
 * from memory than without, measured on uint8 rows). */
static inline void prefetch_slice(const char *p, int64_t n, int64_t i, int64_t slices) {
    for (int64_t b = (n * i / slices) & ~63LL; b < n * (i + 1) / slices; b += 64) __builtin_prefetch(p + b);
}

/* The `rows` rows of nf uint8 features from x as byte columns of 64: col[64 f + s] is feature f
 * of row s (0 past the last row); the `ahead` rows after the 64 are prefetched. */
static void byte_columns(const uint8_t *x, int64_t nf, int rows, uint8_t *col, int64_t ahead) {
    int64_t f0 = 0;
#if defined(__SSE2__)
    if (rows == 64) /* 16 x 16 blocks; the last nf % 16 features below */
        for (; f0 + 16 <= nf; f0 += 16) {
            prefetch_slice((const char *)(x + 64 * nf), ahead * nf, f0 / 16, nf / 16);
            for (int s0 = 0; s0 < 64; s0 += 16) {
                __m128i a[16];
                for (int i = 0; i < 16; i++) a[i] = _mm_loadu_si128((const __m128i *)(x + (s0 + i) * nf + f0));
                transpose16(a);
                for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(col + 64 * (f0 + i) + s0), a[i]);
            }
        }
#endif
    if (f0 == nf) return;
    memset(col + 64 * f0, 0, 64 * (size_t)(nf - f0)); /* rows past the last, and the samples no row fills */
    for (int s = 0; s < rows; s++)
        for (int64_t f = f0; f < nf; f++) col[64 * f + s] = x[s * nf + f];
}

/* Bit s set where byte s (of 64) is at least v (0 .. 256). */
static inline uint64_t byte_column_bits(const uint8_t *col, int v) {
    if (v > 255) return 0;
#if defined(__AVX512BW__)
    return _mm512_cmpge_epu8_mask(_mm512_loadu_si512(col), _mm512_set1_epi8((char)v));
#elif defined(__AVX2__)
    const __m256i t = _mm256_set1_epi8((char)v);
    uint64_t word = 0;
    for (int k = 0; k < 64; k += 32) { /* x >= v where max(x, v) == x, unsigned */
        const __m256i c = _mm256_loadu_si256((const __m256i *)(col + k));
        word |= (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(_mm256_max_epu8(c, t), c)) << k;
    }
    return word;
#else
    uint64_t word = 0;
    for (int k = 0; k < 64; k++) word |= (uint64_t)(col[k] >= v) << k;
    return word;
#endif
}

/* The features of rows r .. r + rows - 1 as float32 columns of 64: col[64 f + s] is feature f of
 * row r + s (0 past the last row: those samples are never counted); the `ahead` rows after the 64
 * are prefetched. Returns whether any of the rows' features is NaN or infinite (x - x is not 0:
 * checked here, where every feature passes through registers once, instead of by a pass of its
 * own over the whole input, which took longer than the executor). */
static int feature_columns(const source *src, int64_t r, int rows, float *col, int64_t ahead) {
    const int64_t nf = src->n_features;
    int64_t f0 = 0;
    int nonfinite = 0;
#if defined(__AVX2__)
    if (rows == 64) { /* 8 x 8 blocks; the last nf % 8 features below */
        __m256 diff = _mm256_setzero_ps(); /* the bits of every x - x: +0 where all are finite */
        for (; f0 + 8 <= nf; f0 += 8) {
            prefetch_slice((const char *)src->x + (r + 64) * nf * 4, ahead * nf * 4, f0 / 8, nf / 8);
            for (int s0 = 0; s0 < 64; s0 += 8) {
                __m256 R[8];
                columns8(src, r + s0, f0, R);
                for (int i = 0; i < 8; i++) {
                    _mm256_storeu_ps(col + 64 * (f0 + i) + s0, R[i]);
                    diff = _mm256_or_ps(diff, _mm256_sub_ps(R[i], R[i]));
                }
            }
        }
        nonfinite = !_mm256_testz_si256(_mm256_castps_si256(diff), _mm256_castps_si256(diff));
    }
#endif
    if (f0 == nf) return nonfinite;
    memset(col + 64 * f0, 0, sizeof(float) * 64 * (size_t)(nf - f0));
    for (int s = 0; s < rows; s++)
        for (int64_t f = f0; f < nf; f++) {
            const float v = feature_at(src, r + s, f);
            col[64 * f + s] = v;
            nonfinite |= v - v != 0.0f;
        }
    return nonfinite;
}

/* Bit s set where column value s (of 64) exceeds t. */
static inline uint64_t column_bits(const float *col, float t) {
    uint64_t word = 0;
#if defined(__AVX512F__)
    const __m512 tv = _mm512_set1_ps(t);
    for (int k = 0; k < 64; k += 16)
        word |= (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(col + k), tv, _CMP_GT_OQ) << k;
#elif defined(__AVX2__)
    const __m256 tv = _mm256_set1_ps(t);
    for (int k = 0; k < 64; k += 8)
        word |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(col + k), tv, _CMP_GT_OQ)) << k;
#else
    for (int k = 0; k < 64; k++) word |= (uint64_t)(col[k] > t) << k;
#endif
    return word;
}

/* Rows r .. r + 63 (the first `rows` of them present; the rest read as 0) as 64-bit masks, one
 * per 64 inputs: t[c].w[s] holds inputs 64 c .. 64 c + 63 of row s. Kind 0: a byte per bit; kind
 * 3: rows of packed bits, eight a byte, least significant first (np.packbits(..., axis=1,
 * bitorder="little")); a packed row's bits past the last input land in masks no signal reads. */
static void row_masks(const source *src, int64_t r, int rows, tile *t) {
    const int64_t n_in = src->n_in, chunks = (n_in + 63) / 64, full = n_in / 64;
    if (src->kind == 0) {
        for (int s = 0; s < 64; s++) {
            const uint8_t *row = (const uint8_t *)src->x + (r + s) * n_in;
            int64_t c = 0;
            if (s < rows) {
                /* four 64-byte chunks a turn: a loop of a row's twelve chunks one at a time (784
                 * inputs) ran the whole executor 2-5 % slower from bytes */
#pragma GCC unroll 4
                for (; c < full; c++) t[c].w[s] = nonzero_mask(row + 64 * c, 64);
                if (c < chunks) t[c++].w[s] = nonzero_mask(row + 64 * full, (int)(n_in - 64 * full));
            }
            for (; c < chunks; c++) t[c].w[s] = 0;
        }
        return;
    }
    const int64_t stride = (n_in + 7) / 8;
    const uint8_t *x = (const uint8_t *)src->x + r * stride;
#if defined(__AVX512BW__)
    /* eight rows' 64-byte spans (eight masks each) at a time: one 8 x 8 qword transpose gives each
     * of the span's tiles its eight rows as one vector */
    for (int64_t h = 0; 8 * h < chunks; h++) {
        const __mmask64 m = ~0ULL >> (64 - (stride - 64 * h < 64 ? stride - 64 * h : 64));
        for (int q = 0; q < 8; q++) {
            v512 T[8];
            for (int l = 0; l < 8; l++)
                T[l] = 8 * q + l < rows ? (v512)_mm512_maskz_loadu_epi8(m, x + (8 * q + l) * stride + 64 * h) : (v512){0};
            qword_transpose8(T);
            for (int c = 0; c < 8 && 8 * h + c < chunks; c++) t[8 * h + c].v[q] = T[c];
        }
    }
#else
    for (int s = 0; s < 64; s++)
        for (int64_t c = 0; c < chunks; c++) {
            uint64_t word = 0; /* little-endian: byte i of the word holds inputs 64 c + 8 i on */
            if (s < rows) memcpy(&word, x + s * stride + 8 * c, c < full ? 8 : (size_t)(stride - 8 * c));
            t[c].w[s] = word;
        }
#endif
}

/* Input bits (kinds 0 and 3) of samples [row0, row0 + BLOCK) into S[0 .. n_in), a CBLOCK part of
 * each signal at a time: each 64 rows' masks (row_masks, tiles w * chunks + c), then each tile
 * transposed and each signal's part stored whole (scattering single words across the signals
 * costs more than the masks and the transposes). */
static void pack_bits(const source *src, int64_t n_rows, int64_t row0, vec *S, tile *tiles) {
    const int64_t n_in = src->n_in, chunks = (n_in + 63) / 64, full = n_in / 64;
    for (int part = 0; part < PARTS; part++) {
        for (int w = 0; w < CWORDS; w++) {
            const int64_t r = row0 + CBLOCK * part + 64 * w;
            row_masks(src, r, rows_from(n_rows, r), tiles + w * chunks);
        }
        for (int64_t c = 0; c < chunks; c++) {
            const int lim = c < full ? 64 : (int)(n_in - 64 * full);
            for (int w = 0; w < CWORDS; w++) TRANSPOSE64(tiles[w * chunks + c].v);
#if CWORDS == 8
            for (int r = 0; r < 8; r++) {
                v512 T[8];
                for (int w = 0; w < 8; w++) T[w] = tiles[w * chunks + c].v[r];
                qword_transpose8(T);
                for (int l = 0; l < 8 && 8 * r + l < lim; l++) ((cvec *)&S[64 * c + 8 * r + l])[part] = (cvec)T[l];
            }
#else
            for (int k = 0; k < lim; k++) {
                cvec v;
                for (int w = 0; w < CWORDS; w++) v[w] = tiles[w * chunks + c].w[k];
                ((cvec *)&S[64 * c + k])[part] = v;
            }
#endif
        }
    }
}

#if defined(__AVX512BW__)
#define LEVELS 1
#define LV_ROWS 8   /* rows compared with a group's thresholds while they sit in registers */
#define LV_AHEAD 16 /* rows ahead whose line of the group is prefetched (the hardware prefetcher
                     * follows 8 streams poorly: 1.4-1.6x slower without) */
/* Float32 rows r .. r + rows - 1 as one byte a feature, its level: how many of the circuit's
 * thresholds for that feature (sorted, distinct, at most 255: Program.levels) the value exceeds,
 * so that input j (feature f, threshold of rank k among f's) is level >= k, and the uint8 path
 * (byte columns, one compare of 64 samples an input) packs the bits: float columns cost a
 * transpose and four compares where bytes cost a quarter of each. LV_ROWS rows at a time, along
 * the rows, each group of 16 features compared with its thresholds (levels + 16 level_at[g]
 * ..: 16 floats each, +inf past a feature's last). Returns whether a value is NaN or infinite. */
static int level_rows(const source *src, int64_t r, int rows, uint8_t *lv) {
    const int64_t nf = src->n_features, groups = (nf + 15) / 16;
    const float *x = (const float *)src->x + r * nf;
    const __m512i one = _mm512_set1_epi32(1);
    __m512 diff = _mm512_setzero_ps();
    for (int s0 = 0; s0 < rows; s0 += LV_ROWS) {
        const int n = rows - s0 < LV_ROWS ? rows - s0 : LV_ROWS;
        for (int64_t g = 0; g < groups; g++) {
            const __mmask16 lanes = nf - 16 * g >= 16 ? 0xFFFF : (__mmask16)((1u << (nf - 16 * g)) - 1);
            const float *t = src->levels + 16 * (int64_t)src->level_at[g];
            const int m = src->level_at[g + 1] - src->level_at[g];
            __m512 v[LV_ROWS];
            __m512i level[LV_ROWS];
            for (int k = 0; k < LV_ROWS; k++) {
                __builtin_prefetch(x + (s0 + LV_AHEAD + k) * nf + 16 * g);
                v[k] = k < n ? _mm512_maskz_loadu_ps(lanes, x + (s0 + k) * nf + 16 * g) : _mm512_setzero_ps();
                diff = _mm512_or_ps(diff, _mm512_sub_ps(v[k], v[k]));
                level[k] = _mm512_setzero_si512();
            }
            for (int i = 0; i < m; i++) {
                const __m512 ti = _mm512_loadu_ps(t + 16 * i);
                for (int k = 0; k < LV_ROWS; k++)
                    level[k] = _mm512_mask_add_epi32(level[k], _mm512_cmp_ps_mask(v[k], ti, _CMP_GT_OQ), level[k], one);
            }
            for (int k = 0; k < n; k++) /* vpmovdb into a register: to memory it is microcoded on Zen 4 */
                _mm_mask_storeu_epi8(lv + (s0 + k) * nf + 16 * g, lanes, _mm512_cvtepi32_epi8(level[k]));
        }
    }
    return _mm512_test_epi32_mask(_mm512_castps_si512(diff), _mm512_castps_si512(diff)) != 0;
}
#endif

/* Input bits of samples [row0, row0 + BLOCK) into S[0 .. n_in): from bits (pack_bits), or from
 * raw features, a CBLOCK part of each signal at a time: 64 rows at a time as columns (col), each
 * input's 64 bits from one column's compares, kept in order (words), then each signal's part
 * stored whole. Returns whether a float32 feature of the block is NaN or infinite. */
static int pack_block(const source *src, int64_t n_rows, int64_t row0, vec *S, uint64_t *words, float *col) {
    const int64_t n_in = src->n_in;
    int nonfinite = 0;
    if (src->kind == 0 || src->kind == 3) { /* bits */
        pack_bits(src, n_rows, row0, S, (tile *)words);
        return 0;
    }
    const uint8_t *bytes = (const uint8_t *)col;
    for (int part = 0; part < PARTS; part++) {
        for (int w = 0; w < CWORDS; w++) {
            const int64_t r = row0 + CBLOCK * part + 64 * w;
            const int rows = rows_from(n_rows, r), ahead = rows_from(n_rows, r + 64);
            uint64_t *out = words + w * n_in;
            const int64_t nf = src->n_features;
            if (src->kind == 1 || src->levels != NULL) { /* bytes: uint8 features, or levels */
                const uint8_t *from = (const uint8_t *)src->x + r * nf;
                int64_t prefetch = ahead;
#ifdef LEVELS
                if (src->levels != NULL) {
                    uint8_t *lv = (uint8_t *)col + 64 * (nf + 1); /* the rows' levels, after the columns */
                    nonfinite |= level_rows(src, r, rows, lv);
                    from = lv, prefetch = 0;
                }
#endif
                byte_columns(from, nf, rows, (uint8_t *)col, prefetch);
                for (int64_t j = 0; j < n_in; j++)
                    out[j] = byte_column_bits(bytes + 64 * (int64_t)src->feature[j], src->least[j]);
            } else {
                nonfinite |= feature_columns(src, r, rows, col, ahead);
                for (int64_t j = 0; j < n_in; j++)
                    out[j] = column_bits(col + 64 * (int64_t)src->feature[j], src->threshold[j]);
            }
        }
        for (int64_t j = 0; j < n_in; j++) {
            cvec v;
            for (int w = 0; w < CWORDS; w++) v[w] = words[w * n_in + j];
            ((cvec *)&S[j])[part] = v;
        }
    }
    return nonfinite;
}

#define WORD vec
#define BS_ZERO ((vec){0})
#define CWORD cvec
#define CWORD_ZERO ((cvec){0})
#if defined(__AVX512F__) && CWORDS == 8
/* The carry-save adders in two ternary-logic instructions each: majority (0xE8; 0x71 with b and c
 * inverted) and three-way xor (0x96, which the inversions leave as it is). */
#define BS_TERNARY(a, b, c, imm) ((cvec)_mm512_ternarylogic_epi64((__m512i)(a), (__m512i)(b), (__m512i)(c), imm))
#define BS_CSA_WITH(h, l, a, b, c, majority)   \
    do {                                       \
        const cvec a_ = (a), b_ = (b), c_ = (c); \
        h = BS_TERNARY(a_, b_, c_, majority);  \
        l = BS_TERNARY(a_, b_, c_, 0x96);      \
    } while (0)
#define BS_CSA(h, l, a, b, c) BS_CSA_WITH(h, l, a, b, c, 0xE8)
#define BS_CSA_NOT(h, l, a, b, c) BS_CSA_WITH(h, l, a, b, c, 0x71)
#endif
#ifndef BS_LEVELS
#define BS_LEVELS 2 /* the class counts' adder tree: carries into the planes once per 64 signals */
#endif
#define BS_COUNTS_ONLY
#include "bitslice.h"

/* Three-input functions: op TERNARY + t computes bit 4a + 2b + c of the truth table t. With
 * AVX-512 a signal of one register (or of an AVX-512VL one) takes one ternary-logic instruction;
 * otherwise the Shannon split on a of two two-input functions of (b, c), each the OR of its
 * minterms (t is a constant: the compiler keeps the terms it needs). */
#define TERNARY 256
#define TT_BIT(t, n) (((t) >> (n)) & 1)
#define TT_MINTERMS(t, b, c)                                                         \
    ((TT_BIT(t, 0) ? ~(b | c) : zero) | (TT_BIT(t, 1) ? ~b & c : zero) | (TT_BIT(t, 2) ? b & ~c : zero) | \
     (TT_BIT(t, 3) ? b & c : zero))
#if defined(__AVX512F__) && WORDS == 8
#define TERN(a, b, c, t) ((vec)_mm512_ternarylogic_epi64((__m512i)(a), (__m512i)(b), (__m512i)(c), t))
#elif defined(__AVX512VL__) && WORDS == 4
#define TERN(a, b, c, t) ((vec)_mm256_ternarylogic_epi64((__m256i)(a), (__m256i)(b), (__m256i)(c), t))
#elif defined(__AVX512VL__) && WORDS == 2
#define TERN(a, b, c, t) ((vec)_mm_ternarylogic_epi64((__m128i)(a), (__m128i)(b), (__m128i)(c), t))
#else
#define TERN(a, b, c, t) \
    (TT_MINTERMS((t) & 15, b, c) ^ (a & (TT_MINTERMS((t) & 15, b, c) ^ TT_MINTERMS((t) >> 4, b, c))))
#endif
/* Gate j's slots (a, b, c read, d written) in the program's operands: four 16-bit numbers in one
 * 64-bit word where the buffer has at most 65,536 slots (one load a gate instead of four, so the
 * core keeps more gates' signal reads in flight), else, in a build with WIDE_SLOTS defined, four
 * int32 (one build holds one of the two: both in one build run slower). */
#ifdef WIDE_SLOTS
#define SLOTS(j)                                                                                    \
    const int32_t *q_ = (const int32_t *)slots + 4 * (j);                                           \
    const int64_t a_ = q_[0], b_ = q_[1], c_ = q_[2], d_ = q_[3];
#else
#define SLOTS(j)                                                                                    \
    const uint64_t w_ = ((const uint64_t *)slots)[j];                                               \
    const int64_t a_ = (uint16_t)w_, b_ = (uint16_t)(w_ >> 16), c_ = (uint16_t)(w_ >> 32), d_ = (int64_t)(w_ >> 48);
#endif
#define TERN_CASE(F, t)                                                                             \
    case TERNARY + (t):                                                                             \
        for (int64_t j = k; j < end; j++) {                                                         \
            F(j) S[d_] = TERN(S[a_], S[b_], S[c_], t);                                              \
        }                                                                                           \
        break;
#define TERN_CASE4(F, t) TERN_CASE(F, t) TERN_CASE(F, t + 1) TERN_CASE(F, t + 2) TERN_CASE(F, t + 3)
#define TERN_CASE16(F, t) TERN_CASE4(F, t) TERN_CASE4(F, t + 4) TERN_CASE4(F, t + 8) TERN_CASE4(F, t + 12)
#define TERN_CASE64(F, t) TERN_CASE16(F, t) TERN_CASE16(F, t + 16) TERN_CASE16(F, t + 32) TERN_CASE16(F, t + 48)
/* A two-input gate g of (a, b) as the three-input function of (a, b, b): bit 4a + 2b + c of its
 * table is g's output for pattern 2a + b (bit 3 - (2a + b) of g). */
#define GATE_BIT(g, i) ((((g) >> (3 - ((i) >> 1))) & 1) << (i))
#define GATE_TABLE(g)                                                                                     \
    (GATE_BIT(g, 0) | GATE_BIT(g, 1) | GATE_BIT(g, 2) | GATE_BIT(g, 3) | GATE_BIT(g, 4) | GATE_BIT(g, 5) | \
     GATE_BIT(g, 6) | GATE_BIT(g, 7))
#define GATE_CASE(F, g)                                                                             \
    case g:                                                                                         \
        for (int64_t j = k; j < end; j++) {                                                         \
            F(j)                                                                                    \
            const vec b = S[b_];                                                                    \
            (void)c_;                                                                               \
            S[d_] = TERN(S[a_], b, b, GATE_TABLE(g));                                               \
        }                                                                                           \
        break;
#define GATE_CASE4(F, g) GATE_CASE(F, g) GATE_CASE(F, g + 1) GATE_CASE(F, g + 2) GATE_CASE(F, g + 3)
#define RUN_SWITCH(F)                                                                               \
    switch (run_op[r]) {                                                                            \
        GATE_CASE4(F, 0) GATE_CASE4(F, 4) GATE_CASE4(F, 8) GATE_CASE4(F, 12)                        \
        TERN_CASE64(F, 0) TERN_CASE64(F, 64) TERN_CASE64(F, 128) TERN_CASE64(F, 192)                \
    }

/* In the AHEAD build each gate also prefetches (into the L2: prefetcht2) a line of the input rows
 * of the thread's next block, line (j * step) >> 16 for gate j, so that reading them overlaps the
 * gates instead of following them: at 8000 wide, where the 257 KB signal buffer leaves room in
 * the L2, 1.06-1.09x from a byte per bit and 1.08-1.11x from packed bits. Where it leaves none
 * (64000 wide: 2 MB), the two extra instructions a gate cost more than the overlap saves, and the
 * build without them runs (program.prefetches_ahead). */
#ifdef AHEAD
#define GATE_SLOTS(j) \
    SLOTS(j)          \
    __builtin_prefetch(ahead + ((((j) * ahead_step) >> 16) << 6), 0, 1);
#else
#define GATE_SLOTS SLOTS
#endif

/* Runs r0 .. r1 - 1, the first of them starting at gate k: gate j reads slots a and b (and c,
 * for a three-input function) of its operands, writes slot d; in the AHEAD build it prefetches
 * from `ahead` (see GATE_SLOTS). Returns the gate after the last run. */
static int64_t eval_runs(vec *S, const uint16_t *run_op, const int32_t *run_len, int64_t r0, int64_t r1, int64_t k,
                         const void *slots, const char *ahead, int64_t ahead_step) {
    const vec zero = {0}; /* for the minterms */
    (void)zero, (void)ahead, (void)ahead_step;
    for (int64_t r = r0; r < r1; r++) {
        const int64_t end = k + run_len[r];
        RUN_SWITCH(GATE_SLOTS)
        k = end;
    }
    return k;
}

/* From a byte per bit, at most this many lines are prefetched a hundred gates (the rest are read
 * while packing, in one sequential stream the hardware prefetcher follows): asking for more than
 * one core's memory serves while the gates run (0.78 lines a gate at 8000 wide) slows the gates
 * and leaves packing no shorter; 45: 1.04x against prefetching every line. Raw features are
 * packed from 64 rows read side by side, which costs more for rows not yet cached: there every
 * line is prefetched. */
#define AHEAD_BYTE_LINES_PER_100_GATES 45

/* The input rows of block blk (bytes from x of n_rows rows of row_bytes) and the fixed-point
 * step (lines << 16 a gate) that spreads their first lines (at most max_lines) over n_ops gates;
 * no rows past the last block: a step of 0 at x itself. */
static int64_t block_lines_step(const char **at, const char *x, int64_t row_bytes, int64_t n_rows, int64_t blk,
                                int64_t n_ops, int64_t max_lines) {
    const int64_t row0 = blk * BLOCK, rows = block_rows(n_rows, row0);
    *at = x + (rows ? row0 : 0) * row_bytes;
    if (rows == 0 || n_ops == 0) return 0;
    const int64_t lines = (rows * row_bytes + 63) / 64;
    return ((lines < max_lines ? lines : max_lines) << 16) / n_ops;
}

/* Add the plane (weight 2^shift) of CBLOCK samples into 16-bit counters. */
static void spread_plane(const cvec *plane, int shift, u16x8 *cnt) {
#if defined(__AVX512BW__)
    uint32_t mask[CBLOCK / 32]; /* one masked add of 2^shift per 32 counters */
    memcpy(mask, plane, sizeof mask);
    __m512i *c = (__m512i *)cnt;
    const __m512i weight = _mm512_set1_epi16((short)(1 << shift));
    for (int i = 0; i < CBLOCK / 32; i++) c[i] = _mm512_mask_add_epi16(c[i], mask[i], c[i], weight);
#elif defined(__AVX2__)
    uint16_t mask[CBLOCK / 16]; /* 16 counters a step: each lane tests its own bit of the mask */
    memcpy(mask, plane, sizeof mask);
    __m256i *c = (__m256i *)cnt;
    const __m256i lane_bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
                                               16384, (short)32768);
    const __m256i weight = _mm256_set1_epi16((short)(1 << shift));
    for (int i = 0; i < CBLOCK / 16; i++) {
        const __m256i set = _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16((short)mask[i]), lane_bit), lane_bit);
        c[i] = _mm256_add_epi16(c[i], _mm256_and_si256(set, weight));
    }
#else
    const uint8_t *bytes = (const uint8_t *)plane;
    for (int i = 0; i < CBLOCK / 8; i++) cnt[i] += SPREAD[bytes[i]] << shift;
#endif
}

/* Counts (bs_group_planes) for BLOCK samples into 16-bit counters, a CBLOCK part at a time; idx
 * are slots times PARTS (the slot's first part). */
static void group_count(const vec *S, const int32_t *idx, int64_t n_pos, int64_t n_neg, int n_planes, u16x8 *cnt) {
    cvec planes[4 + 16];
    memset(cnt, 0, sizeof(u16x8) * (BLOCK / 8));
    for (int h = 0; h < PARTS; h++) {
        bs_group_planes((const cvec *)S + h, idx, n_pos, n_neg, n_planes, planes);
        for (int p = 0; p < 4 + n_planes; p++) spread_plane(&planes[p], p, cnt + h * (CBLOCK / 8));
    }
}

#if defined(__AVX512BW__)
/* Rows of up to 16 class counts from 32 samples at a time: 16-bit vector k of a group holds flat
 * elements 32 k .. 32 k + 31 of its rows, element e being class e % n of sample e / n, so lane j
 * takes lane (32 k + j) / n of class (32 k + j) % n's counters; each half is then widened to
 * int32 and offset. */
typedef struct {
    __m512i lane[16];
    __mmask32 from[16][16]; /* from[k][c]: the lanes of vector k that class c fills */
    __m512i offset[32];     /* the offsets of int32 vector 2 k + h */
} count_rows;

static void init_count_rows(count_rows *L, int n, const int32_t *out_offset) {
    memset(L, 0, sizeof *L);
    for (int k = 0; k < n; k++) {
        int16_t lane[32];
        int32_t offset[32];
        for (int j = 0; j < 32; j++) {
            lane[j] = (int16_t)((32 * k + j) / n);
            L->from[k][(32 * k + j) % n] |= (__mmask32)1 << j;
            offset[j] = out_offset[(32 * k + j) % n];
        }
        L->lane[k] = _mm512_loadu_si512(lane);
        L->offset[2 * k] = _mm512_loadu_si512(offset);
        L->offset[2 * k + 1] = _mm512_loadu_si512(offset + 16);
    }
}
#endif

/* The block's class counts (class c's 16-bit counters at cnt + c * BLOCK) plus out_offset, as
 * rows of n_classes int32 into out: with AVX-512 and at most 16 classes, 32 rows at a time
 * through lane permutes and whole-vector stores (a store a count ran 4.6 ns an image at 8000
 * wide), the rest a count at a time. */
static void store_counts(const uint16_t *cnt, int64_t rows, int64_t n_classes, const int32_t *out_offset,
                         int32_t *out, const void *layout) {
    int64_t s = 0;
#if defined(__AVX512BW__)
    const count_rows *L = layout;
    if (L)
        for (; s + 32 <= rows; s += 32) {
            __m512i v[16];
            for (int64_t c = 0; c < n_classes; c++) v[c] = _mm512_loadu_si512(cnt + c * BLOCK + s);
            for (int64_t k = 0; k < n_classes; k++) {
                __m512i o = _mm512_setzero_si512();
                for (int64_t c = 0; c < n_classes; c++) o = _mm512_mask_permutexvar_epi16(o, L->from[k][c], L->lane[k], v[c]);
                int32_t *to = out + s * n_classes + 32 * k;
                _mm512_storeu_si512(to, _mm512_add_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(o)), L->offset[2 * k]));
                _mm512_storeu_si512(to + 16, _mm512_add_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(o, 1)),
                                                              L->offset[2 * k + 1]));
            }
        }
#else
    (void)layout;
#endif
    for (; s < rows; s++)
        for (int64_t c = 0; c < n_classes; c++) out[s * n_classes + c] = cnt[c * BLOCK + s] + out_offset[c];
}

/* Each sample's class of the largest count (the first of equal ones, as numpy's argmax) from the
 * block's 16-bit counters plus out_offset, into labels: with AVX-512 16 samples at a time, a
 * compare and two masked moves a class. */
static void store_labels(const uint16_t *cnt, int64_t rows, int64_t n_classes, const int32_t *out_offset,
                         int64_t *labels) {
    int64_t s = 0;
#if defined(__AVX512F__)
    for (; s + 16 <= rows; s += 16) {
        __m512i top = _mm512_setzero_si512(), best = _mm512_setzero_si512();
        for (int64_t c = 0; c < n_classes; c++) {
            const __m256i part = _mm256_loadu_si256((const __m256i *)(cnt + c * BLOCK + s));
            const __m512i v = _mm512_add_epi32(_mm512_cvtepu16_epi32(part), _mm512_set1_epi32(out_offset[c]));
            const __mmask16 more = c ? _mm512_cmpgt_epi32_mask(v, top) : (__mmask16)0xFFFF;
            top = _mm512_mask_mov_epi32(top, more, v);
            best = _mm512_mask_mov_epi32(best, more, _mm512_set1_epi32((int)c));
        }
        _mm512_storeu_si512(labels + s, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(best)));
        _mm512_storeu_si512(labels + s + 8, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(best, 1)));
    }
#endif
    for (; s < rows; s++) {
        int64_t best = 0;
        int32_t top = cnt[s] + out_offset[0];
        for (int64_t c = 1; c < n_classes; c++) {
            const int32_t v = cnt[c * BLOCK + s] + out_offset[c];
            if (v > top) top = v, best = c;
        }
        labels[s] = best;
    }
}

#ifdef PHASES
/* The instrumented build (benchmarks/executor_phases.py): wall seconds in each phase of a block
 * (packing, gates, class counts, storing them), summed over blocks and threads, and the rows run;
 * executor_phases hands them over and starts again from zero. */
#include <time.h>
static double phase_seconds[4];
static int64_t phase_rows;

static double seconds_now(void) {
    struct timespec t;
    timespec_get(&t, TIME_UTC);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void executor_phases(double *seconds, int64_t *rows) {
    #pragma omp critical(phases)
    {
        for (int i = 0; i < 4; i++) seconds[i] = phase_seconds[i], phase_seconds[i] = 0;
        *rows = phase_rows, phase_rows = 0;
    }
}
#define PHASE_MARK(t) const double t = seconds_now();
/* gates and class counts take turns: their seconds in split[0] and split[1] */
#define PHASE_SPLIT(v) double v[2] = {0, 0};
#define PHASE_SPLIT_ADD(v, g0, g1, g2) v[0] += g1 - g0, v[1] += g2 - g1;
#define PHASES_ADD(packing, gates, counts, storing, rows)                                                \
    _Pragma("omp critical(phases)") {                                                                  \
        phase_seconds[0] += packing, phase_seconds[1] += gates, phase_seconds[2] += counts;           \
        phase_seconds[3] += storing, phase_rows += rows;                                              \
    }
#else
#define PHASE_MARK(t)
#define PHASE_SPLIT(v)
#define PHASE_SPLIT_ADD(v, g0, g1, g2)
#define PHASES_ADD(packing, gates, counts, storing, rows)
#endif

/* Inputs (x: see source; feature and threshold only for kinds 1 and 2) go to slots 0 .. n_in - 1;
 * slot n_slots - 1 stays zero. Class c counts out_idx row c (n_pos plain, n_neg inverted slots)
 * plus out_offset[c], after the first count_after[c] runs. Returns 0, -1 when memory runs out,
 * or -2 when a float32 feature is NaN or infinite (the counts then mean nothing). counts:
 * (n_rows, n_classes) int32; labels: (n_rows,) int64, each sample's class of the largest count;
 * either may be NULL (not written). */
int run_circuit(const void *x, int x_kind, int64_t n_rows, int64_t n_in, int64_t n_features, const int32_t *feature,
                const float *threshold, const float *levels, const int32_t *level_at, const int16_t *level_rank,
                int64_t n_slots, const uint16_t *run_op, const int32_t *run_len, int64_t n_runs,
                const int32_t *count_after, const void *slots, const int32_t *out_idx,
                const int32_t *out_offset, int64_t n_classes, int64_t n_pos, int64_t n_neg, int32_t *counts,
                int64_t *labels, int threads) {
    int16_t *least = NULL; /* uint8 input: each threshold as the byte to reach, once per call */
    if (x_kind == 1) {
        if (!(least = malloc(sizeof(int16_t) * (n_in + 1)))) return -1;
        for (int64_t j = 0; j < n_in; j++) least[j] = least_above(threshold[j]);
    }
    int32_t *parts_idx = NULL; /* the class counts' slots in CBLOCK parts */
    if (PARTS > 1) {
        const int64_t n_idx = n_classes * (n_pos + n_neg);
        if (!(parts_idx = malloc(sizeof(int32_t) * (n_idx + 1)))) {
            free(least);
            return -1;
        }
        for (int64_t i = 0; i < n_idx; i++) parts_idx[i] = PARTS * out_idx[i];
        out_idx = parts_idx;
    }
#ifdef LEVELS
    const int use_levels = x_kind == 2 && levels != NULL;
#else
    const int use_levels = 0;
#endif
    const source src = {x, x_kind, n_in, n_features, feature, threshold, use_levels ? level_rank : least,
                        use_levels ? levels : NULL, level_at};
    static int ready = 0;
    if (!ready) {
        init_spread();
        init_qword_transpose();
        init_transpose();
        ready = 1;
    }
    const int64_t n_blocks = (n_rows + BLOCK - 1) / BLOCK;
    const int64_t row_bytes = x_kind == 0 ? n_in : x_kind == 3 ? (n_in + 7) / 8 : n_features * (x_kind == 1 ? 1 : 4);
    int64_t n_ops = 0, claimed = 0;
    for (int64_t r = 0; r < n_runs; r++) n_ops += run_len[r];
    const int64_t max_lines = x_kind == 0 ? n_ops * AHEAD_BYTE_LINES_PER_100_GATES / 100 : INT64_MAX;
    const int n_planes = bs_n_planes(n_pos + n_neg); /* < 65536 signals: at most 12 */
    const void *layout = NULL;
#if defined(__AVX512BW__)
    count_rows rows_layout;
    if (n_classes <= 16 && n_rows >= 32) {
        init_count_rows(&rows_layout, (int)n_classes, out_offset);
        layout = &rows_layout;
    }
#endif
    int failed = 0, nonfinite = 0;
    #pragma omp parallel num_threads(threads)
    {
        vec *S = aligned_alloc(64, sizeof(vec) * n_slots);
        u16x8 *cnt = aligned_alloc(64, sizeof(u16x8) * (BLOCK / 8) * n_classes);
        /* bits are transposed in tiles (as many words as CBLOCK bits of each input), raw
         * features go through columns */
        uint64_t *words = aligned_alloc(64, sizeof(tile) * CWORDS * ((n_in + 63) / 64 + 1));
        const int raw = x_kind == 1 || x_kind == 2;
        float *col = raw ? aligned_alloc(64, sizeof(float) * 64 * (n_features + 1)) : NULL;
        int ready_here = S && cnt && words && (!raw || col);
#ifdef BUFFERS_FAIL /* tests: thread BUFFERS_FAIL is refused its buffers */
        if (omp_get_thread_num() == BUFFERS_FAIL) ready_here = 0;
#endif
        if (!ready_here) {
            #pragma omp atomic write
            failed = 1;
        } else {
            const vec zero = {0};
            S[n_slots - 1] = zero; /* padding slot for the group sums, never written by a gate */
        }
        /* blocks are claimed one ahead, so that a thread knows its next block while it runs the
         * gates of this one (AHEAD prefetches its rows); a thread without its buffers claims none,
         * and the call fails */
        int64_t blk = ready_here ? __atomic_fetch_add(&claimed, 1, __ATOMIC_RELAXED) : n_blocks;
        while (blk < n_blocks) {
            const int64_t next = __atomic_fetch_add(&claimed, 1, __ATOMIC_RELAXED);
            const int64_t row0 = blk * BLOCK;
            const char *ahead;
            const int64_t step = block_lines_step(&ahead, (const char *)x, row_bytes, n_rows, next, n_ops, max_lines);
            PHASE_MARK(t0)
            if (pack_block(&src, n_rows, row0, S, words, col)) {
                #pragma omp atomic write
                nonfinite = 1;
            }
            PHASE_MARK(t1)
            PHASE_SPLIT(split)
            /* class c counted once the runs it reads have run (count_after[n_classes - 1] = n_runs) */
            int64_t r = 0, k = 0;
            for (int64_t c = 0; c < n_classes; c++) {
                PHASE_MARK(g0)
                k = eval_runs(S, run_op, run_len, r, count_after[c], k, slots, ahead, step);
                r = count_after[c];
                PHASE_MARK(g1)
                group_count(S, out_idx + c * (n_pos + n_neg), n_pos, n_neg, n_planes, cnt + c * (BLOCK / 8));
                PHASE_MARK(g2)
                PHASE_SPLIT_ADD(split, g0, g1, g2)
            }
            PHASE_MARK(t3)
            const int64_t rows = block_rows(n_rows, row0);
            if (counts)
                store_counts((const uint16_t *)cnt, rows, n_classes, out_offset, counts + row0 * n_classes, layout);
            if (labels) store_labels((const uint16_t *)cnt, rows, n_classes, out_offset, labels + row0);
            PHASE_MARK(t4)
            PHASES_ADD(t1 - t0, split[0], split[1], t4 - t3, rows)
            blk = next;
        }
        free(S);
        free(cnt);
        free(words);
        free(col);
    }
    free(least);
    free(parts_idx);
    return failed ? -1 : nonfinite ? -2 : 0;
}
