// AVX-512 loops for groups of 2–16 heads (GQA, and MLA-family shards at high TP):
// per sub-tile of MLRA_SMALL_SUBTILE rows, scores as dot products along the key
// columns (HB heads × TB tokens = 16 accumulators, one transposing reduction to a
// vector of 16 scores stored token-major), the online softmax on those vectors,
// and P·V register-blocked over heads × value columns. Every cached element is
// loaded (and f16/bf16 converted) once per step; arithmetic is f32 (FMA).
#include "CKernels.h"

#if defined(__x86_64__)
#include <math.h>
#include "avx512_common.h"

// Software prefetches: the hardware prefetchers do not follow these loops' strided reads
// (without them a cold cache ran about 10× slower, docs/kernels.md). See small_group for
// how the requests are spread.

// 16 elements from element index i of `p` as f32; lanes outside `m` are 0.
AVX512 __m512 load16(const void *p, long i, int dtype, __mmask16 m) {
    switch (dtype) {
    case MLRA_DTYPE_F32: return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    case MLRA_DTYPE_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
    default:  return _mm512_castsi512_ps(_mm512_slli_epi32(
                  _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i)), 16));
    }
}

AVX512 __mmask16 first(int k) { return k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u); }


// Lane L of the result = sum of the 16 lanes of v[L] (a transposing halving tree:
// 256-bit halves, 128-bit quarters, then pairs and single lanes inside quarters).
// The tree leaves lane 4j + k holding input slot 4k + j, so slots are fed transposed.
AVX512 __m512 reduce16(const __m512 *v) {
    __m512 a[8], b[4], c[2];
    for (int p = 0; p < 8; p++) {
        const int s0 = 2 * p, s1 = 2 * p + 1;
        const __m512 x = v[4 * (s0 % 4) + s0 / 4], y = v[4 * (s1 % 4) + s1 / 4];
        a[p] = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, 0x44), _mm512_shuffle_f32x4(x, y, 0xEE));
    }
    for (int p = 0; p < 4; p++)
        b[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0x88),
                             _mm512_shuffle_f32x4(a[2 * p], a[2 * p + 1], 0xDD));
    for (int p = 0; p < 2; p++)
        c[p] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * p], b[2 * p + 1], 0x44),
                             _mm512_shuffle_ps(b[2 * p], b[2 * p + 1], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
}

// Lane-wise max / sum of v with v rotated by s lanes, for s = hp, 2·hp, ... 8: afterwards
// lane l holds the max / sum over all lanes of head l mod hp.
AVX512 __m512 rot(__m512 v, int s) {
    const __m512i x = _mm512_castps_si512(v);
    switch (s) {
    case 1: return _mm512_castsi512_ps(_mm512_alignr_epi32(x, x, 1));
    case 2: return _mm512_castsi512_ps(_mm512_alignr_epi32(x, x, 2));
    case 4: return _mm512_castsi512_ps(_mm512_alignr_epi32(x, x, 4));
    default: return _mm512_castsi512_ps(_mm512_alignr_epi32(x, x, 8));
    }
}
AVX512 __m512 fold_max(__m512 v, int hp) { for (int s = hp; s < 16; s *= 2) v = _mm512_max_ps(v, rot(v, s)); return v; }
AVX512 __m512 fold_sum(__m512 v, int hp) { for (int s = hp; s < 16; s *= 2) v = _mm512_add_ps(v, rot(v, s)); return v; }

// Lines of rows ahead still to prefetch: `rows` rows from `row`, `stride` bytes apart,
// bytes [lo, hi) of each. pf_step issues the next k of them.
typedef struct { const char *row; long stride, lo, hi, at; int rows; } pf_cursor;

AVX512 void pf_step(pf_cursor *p, int k) {
    for (; k > 0 && p->rows > 0; k--) {
        _mm_prefetch(p->row + p->at, _MM_HINT_T0);
        p->at += 64;
        if (p->at >= p->hi) { p->at = p->lo; p->row += p->stride; p->rows--; }
    }
}

// Scores of tokens t0 .. t0 + TB (rows past n−1 read row n−1; their lanes are masked later)
// into scores[(t − sub0)·HB + h], HB = 16 / TB heads (padded heads have zero queries).
#define QK_SMALL(HB, TB)                                                                         \
AVX512 void qk_small_##HB(const mlra_small_group *g, const float *qpad, const void *rows, int dtype, \
                          long ld, long t0, long n, float *out, pf_cursor *pf, int perChunk) {   \
    __m512 acc[16];                                                                              \
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();                                   \
    const int dk = g->key_w + g->rope_w;                                                         \
    long base[TB];                                                                               \
    for (int i = 0; i < TB; i++) base[i] = (t0 + i < n ? t0 + i : n - 1) * ld;                   \
    for (int seg = 0; seg < 2; seg++) {                                                          \
        const int width = seg == 0 ? g->key_w : g->rope_w;                                       \
        const int off = seg == 0 ? g->key_off : g->rope_off, q0 = seg == 0 ? 0 : g->key_w;       \
        for (int c = 0; c < width; c += 16) {                                                    \
            pf_step(pf, perChunk);                                                               \
            const __mmask16 m = first(width - c);                                                \
            __m512 k[TB];                                                                        \
            for (int i = 0; i < TB; i++) k[i] = load16(rows, base[i] + off + c, dtype, m);       \
            for (int h = 0; h < HB; h++) {                                                       \
                const __m512 qv = _mm512_maskz_loadu_ps(m, qpad + h * dk + q0 + c);              \
                for (int i = 0; i < TB; i++) acc[i * HB + h] = _mm512_fmadd_ps(qv, k[i], acc[i * HB + h]); \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    _mm512_storeu_ps(out, reduce16(acc));                                                        \
}
QK_SMALL(2, 8)
QK_SMALL(4, 4)

// ---- 8 or 16 heads: accumulators with two 8-lane halves ----------------------------
// Each accumulator holds one token and two heads (h, h + 4), 8 key columns per half:
// the key chunk is loaded once into both halves, the queries come prepared as head
// pairs ("qpair": [chunk][pair][16]). 16 accumulators give 32 scores from a 3-level
// reduction (42 operations instead of 2 × 45 for reduce16).

// 8 elements at element index i into both 256-bit halves, as f32; lanes past `m` are 0.
AVX512 __m512 load8x2(const void *p, long i, int dtype, __mmask8 m, int full) {
    switch (dtype) {
    case MLRA_DTYPE_F32:
        return full ? _mm512_broadcast_f32x8(_mm256_loadu_ps((const float *)p + i))
                    : _mm512_broadcast_f32x8(_mm256_maskz_loadu_ps(m, (const float *)p + i));
    case MLRA_DTYPE_F16: {
        const __m128i x = full ? _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i))
                               : _mm_maskz_loadu_epi16(m, (const uint16_t *)p + i);
        return _mm512_cvtph_ps(_mm256_broadcastsi128_si256(x));
    }
    default: {
        const __m128i x = full ? _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i))
                               : _mm_maskz_loadu_epi16(m, (const uint16_t *)p + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_broadcastsi128_si256(x)), 16));
    }
    }
}

// Lane 4j + r of out[m] = sum of accumulator 8m + 2r + j/2, half j mod 2.
AVX512 void reduce_pairs(const __m512 *a, __m512 *out) {
    __m512 b[8], c[4];
    for (int k = 0; k < 8; k++)
        b[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xDD));
    for (int k = 0; k < 4; k++)
        c[k] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0x44),
                             _mm512_shuffle_ps(b[2 * k], b[2 * k + 1], 0xEE));
    for (int k = 0; k < 2; k++)
        out[k] = _mm512_add_ps(_mm512_shuffle_ps(c[2 * k], c[2 * k + 1], 0x88),
                               _mm512_shuffle_ps(c[2 * k], c[2 * k + 1], 0xDD));
}

// Accumulator i = 8m + 2r + jj then scores (token-major [t][HP]) flat index 16m + 8jj + 4s + r
// for its half s: token and head pair follow from HP.
#define PAIR_TOKEN(HP, i) ((HP) == 8 ? 2 * ((i) / 8) + (i) % 2 : (i) / 8)
#define PAIR_INDEX(HP, i) ((HP) == 8 ? ((i) % 8) / 2 : 4 * ((i) % 2) + ((i) % 8) / 2)

#define QK_PAIRS(HP)                                                                             \
AVX512 void qk_pairs_##HP##_chunk(__m512 *acc, const float *qp, const void *rows, int dtype,     \
                                  const long *base, int c, __mmask8 m, int full) {               \
    __m512 k[32 / HP], q[HP / 2];                                                                \
    for (int t = 0; t < 32 / HP; t++) k[t] = load8x2(rows, base[t] + c, dtype, m, full);         \
    for (int p = 0; p < HP / 2; p++) q[p] = _mm512_loadu_ps(qp + 16 * p);                        \
    for (int i = 0; i < 16; i++)                                                                 \
        acc[i] = _mm512_fmadd_ps(q[PAIR_INDEX(HP, i)], k[PAIR_TOKEN(HP, i)], acc[i]);            \
}                                                                                                \
AVX512 void qk_pairs_##HP(const mlra_small_group *g, const float *qpair, const void *rows, int dtype, \
                          long ld, long t0, long n, float *out, pf_cursor *pf, int perChunk) {   \
    __m512 acc[16];                                                                              \
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();                                   \
    const float *qp = qpair;                                                                     \
    for (int seg = 0; seg < 2; seg++) {                                                          \
        const int width = seg == 0 ? g->key_w : g->rope_w;                                       \
        long base[32 / HP];                                                                      \
        for (int t = 0; t < 32 / HP; t++)                                                        \
            base[t] = (t0 + t < n ? t0 + t : n - 1) * ld + (seg == 0 ? g->key_off : g->rope_off); \
        int c = 0;                                                                               \
        for (; c + 8 <= width; c += 8, qp += 8 * HP) {                                           \
            pf_step(pf, perChunk);                                                               \
            qk_pairs_##HP##_chunk(acc, qp, rows, dtype, base, c, 0xFF, 1);                       \
        }                                                                                        \
        if (c < width) {                                                                         \
            qk_pairs_##HP##_chunk(acc, qp, rows, dtype, base, c, (__mmask8)((1u << (width - c)) - 1u), 0); \
            qp += 8 * HP;                                                                        \
        }                                                                                        \
    }                                                                                            \
    __m512 o[2];                                                                                 \
    reduce_pairs(acc, o);                                                                        \
    _mm512_storeu_ps(out, o[0]);                                                                 \
    _mm512_storeu_ps(out + 16, o[1]);                                                            \
}
QK_PAIRS(8)
QK_PAIRS(16)

// The queries of 8 or 16 heads as head pairs (h, h + 4) of 8-column chunks per segment,
// zero past each segment's width and past the group's heads; returns floats written.

// acc[h][c ..] for heads h0 .. h0 + HB, columns in blocks of CB vectors: rescale by the
// correction, then += Σ_t P[t][h]·V[t] over the sub-tile's m rows.
#define PV_SMALL(HB, CB)                                                                         \
AVX512 void pv_small_##HB(const mlra_small_group *g, int h0, int hp, const float *corr,          \
                          const void *rows, int dtype, long ld, long sub0, int m, pf_cursor *pf) { \
    const int dv = g->dv;                                                                        \
    for (int c0 = 0; c0 < dv; c0 += 16 * CB) {                                                   \
        __m512 acc[HB * CB];                                                                     \
        __mmask16 mk[CB];                                                                        \
        for (int j = 0; j < CB; j++) mk[j] = c0 + 16 * j < dv ? first(dv - c0 - 16 * j) : 0;     \
        for (int h = 0; h < HB; h++) {                                                           \
            const __m512 f = _mm512_set1_ps(corr[h0 + h]);                                       \
            for (int j = 0; j < CB; j++)                                                         \
                acc[h * CB + j] = _mm512_mul_ps(f, _mm512_maskz_loadu_ps(mk[j], g->acc + (long)(h0 + h) * dv + c0 + 16 * j)); \
        }                                                                                        \
        const float *p = g->scores + h0;                                                         \
        long r = sub0 * ld + g->value_off + c0;                                                  \
        for (int t = 0; t < m; t++, r += ld, p += hp) {                                          \
            pf_step(pf, 1);                                                                      \
            __m512 v[CB];                                                                        \
            for (int j = 0; j < CB; j++) v[j] = load16(rows, r + 16 * j, dtype, mk[j]);          \
            for (int h = 0; h < HB; h++) {                                                       \
                const __m512 pb = _mm512_set1_ps(p[h]);                                          \
                for (int j = 0; j < CB; j++) acc[h * CB + j] = _mm512_fmadd_ps(pb, v[j], acc[h * CB + j]); \
            }                                                                                    \
        }                                                                                        \
        for (int h = 0; h < HB; h++)                                                             \
            for (int j = 0; j < CB; j++)                                                         \
                _mm512_mask_storeu_ps(g->acc + (long)(h0 + h) * dv + c0 + 16 * j, mk[j], acc[h * CB + j]); \
    }                                                                                            \
}
PV_SMALL(8, 2) PV_SMALL(7, 2) PV_SMALL(6, 2) PV_SMALL(5, 3)
PV_SMALL(4, 4) PV_SMALL(3, 5) PV_SMALL(2, 8) PV_SMALL(1, 8)

AVX512 void small_group(const mlra_small_group *g, const void *rows, const int dtype, long ld, long n) {
    const int heads = g->heads, dk = g->key_w + g->rope_w;
    const int hp = heads <= 2 ? 2 : heads <= 4 ? 4 : heads <= 8 ? 8 : 16;
    const int tb = 16 / hp;
    const float *qpad = g->q;   // laid out by mlra_small_prepare
    float corr[16];
    const __mmask16 live = first(heads);
    // Bytes of a row the group reads, for prefetching the next sub-tile.
    const int esize = dtype == MLRA_DTYPE_F32 ? 4 : 2;
    int lo = g->key_off, hi = g->key_off + g->key_w;
    if (g->rope_w > 0) { lo = lo < g->rope_off ? lo : g->rope_off; hi = hi > g->rope_off + g->rope_w ? hi : g->rope_off + g->rope_w; }
    lo = lo < g->value_off ? lo : g->value_off;
    hi = hi > g->value_off + g->dv ? hi : g->value_off + g->dv;
    const long spanLo = (long)lo * esize & ~63L, spanHi = (long)hi * esize;
    const long rowBytes = ld * esize, linesPerRow = (spanHi - spanLo + 63) / 64;
    // Prefetching: rows [sub0 + 2·SUB, sub0 + 3·SUB) are requested while sub-tile sub0 is
    // computed, spread over its key chunks (about half) and its P·V rows (one line per row
    // step), so the requests never pile up in the miss buffers: issued in one burst per
    // block of rows they stalled there (docs/kernels.md). The first two sub-tiles are
    // requested at once.
    const int SUB = MLRA_SMALL_SUBTILE;
    pf_cursor first2 = { (const char *)rows, rowBytes, spanLo, spanHi, spanLo, n < 2 * SUB ? (int)n : 2 * SUB };
    pf_step(&first2, 1 << 30);

    for (long sub0 = 0; sub0 < n; sub0 += MLRA_SMALL_SUBTILE) {
        const int m = n - sub0 < MLRA_SMALL_SUBTILE ? (int)(n - sub0) : MLRA_SMALL_SUBTILE;
        // Scores, token-major [t][hp]; one vector per tb tokens.
        const int vectors = (m + tb - 1) / tb;
        // 8 and 16 heads: two vectors per call (a spare vector past the rows is harmless).
        const int step = hp >= 8 ? 2 : 1;
        const long ahead = sub0 + 2 * SUB;
        pf_cursor pf = { (const char *)rows + ahead * rowBytes, rowBytes, spanLo, spanHi, spanLo,
                         ahead >= n ? 0 : n - ahead < SUB ? (int)(n - ahead) : SUB };
        const int chunkWidth = hp >= 8 ? 8 : 16;
        const long keyChunks = (long)(g->key_w / chunkWidth + g->rope_w / chunkWidth) * ((vectors + step - 1) / step);
        const int perChunk = keyChunks > 0 ? (int)((pf.rows * linesPerRow + 2 * keyChunks - 1) / (2 * keyChunks)) : 0;
        for (int v = 0; v < vectors; v += step) {
            const long t0 = sub0 + (long)v * tb;
            float *out = g->scores + (long)v * 16;
            switch (hp) {
            case 2: qk_small_2(g, qpad, rows, dtype, ld, t0, n, out, &pf, perChunk); break;
            case 4: qk_small_4(g, qpad, rows, dtype, ld, t0, n, out, &pf, perChunk); break;
            case 8: qk_pairs_8(g, qpad, rows, dtype, ld, t0, n, out, &pf, perChunk); break;
            default: qk_pairs_16(g, qpad, rows, dtype, ld, t0, n, out, &pf, perChunk); break;
            }
        }
        // Online softmax: lanes of the last vector past row m are not tokens.
        const __mmask16 lastValid = first((m - (vectors - 1) * tb) * hp);
        __m512 top = _mm512_set1_ps(-INFINITY);
        for (int v = 0; v < vectors; v++)
            top = _mm512_mask_max_ps(top, v == vectors - 1 ? lastValid : 0xFFFF, top, _mm512_loadu_ps(g->scores + v * 16));
        top = fold_max(top, hp);
        const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
        const __m512i head = _mm512_and_si512(lane, _mm512_set1_epi32(hp - 1));
        const __m512 old = _mm512_permutexvar_ps(head, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), live, g->row_max));
        const __m512 now = _mm512_max_ps(old, top);
        const __mmask16 seen = _mm512_cmp_ps_mask(old, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
        const __m512 cv = _mm512_maskz_mov_ps(seen, exp512(_mm512_sub_ps(old, now)));
        __m512 sum = _mm512_setzero_ps();
        for (int v = 0; v < vectors; v++) {
            const __m512 e = _mm512_maskz_mov_ps(v == vectors - 1 ? lastValid : 0xFFFF,
                                                 exp512(_mm512_sub_ps(_mm512_loadu_ps(g->scores + v * 16), now)));
            _mm512_storeu_ps(g->scores + v * 16, e);
            sum = _mm512_add_ps(sum, e);
        }
        sum = fold_sum(sum, hp);
        const __m512 l = _mm512_permutexvar_ps(head, _mm512_maskz_loadu_ps(live, g->row_sum));
        _mm512_mask_storeu_ps(g->row_sum, live, _mm512_fmadd_ps(l, cv, sum));
        _mm512_mask_storeu_ps(g->row_max, live, now);
        _mm512_storeu_ps(corr, cv);
        // P·V, 8 heads at a time.
        for (int h0 = 0; h0 < heads; h0 += 8) {
            switch (heads - h0 >= 8 ? 8 : heads - h0) {
            case 8: pv_small_8(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            case 7: pv_small_7(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            case 6: pv_small_6(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            case 5: pv_small_5(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            case 4: pv_small_4(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            case 3: pv_small_3(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            case 2: pv_small_2(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            default: pv_small_1(g, h0, hp, corr, rows, dtype, ld, sub0, m, &pf); break;
            }
        }
        pf_step(&pf, 1 << 30);
    }
}

// One copy of the loops per storage type, so the conversion is resolved at compile time.
AVX512_FN static void small_f32(const mlra_small_group *g, const void *r, long ld, long n) { small_group(g, r, MLRA_DTYPE_F32, ld, n); }
AVX512_FN static void small_f16(const mlra_small_group *g, const void *r, long ld, long n) { small_group(g, r, MLRA_DTYPE_F16, ld, n); }
AVX512_FN static void small_bf16(const mlra_small_group *g, const void *r, long ld, long n) { small_group(g, r, MLRA_DTYPE_BF16, ld, n); }

void mlra_avx512_small_group(const mlra_small_group *g, const void *rows, mlra_dtype dtype, long ld, long n) {
    switch (dtype) {
    case MLRA_DTYPE_F32: small_f32(g, rows, ld, n); break;
    case MLRA_DTYPE_F16: small_f16(g, rows, ld, n); break;
    default: small_bf16(g, rows, ld, n); break;
    }
}

#endif

// Heads padded to 2, 4, 8 or 16 lanes.
static int padded_heads(int heads) { return heads <= 2 ? 2 : heads <= 4 ? 4 : heads <= 8 ? 8 : 16; }

long mlra_small_prepared_count(int heads, int key_w, int rope_w) {
    const int hp = padded_heads(heads);
    if (hp < 8) return (long)hp * (key_w + rope_w);
    return (long)hp * 8 * ((key_w + 7) / 8 + (rope_w + 7) / 8);
}

// 2 or 4 heads: [hp][dk], zero heads past `heads`. 8 or 16 heads: head pairs
// (h, h + 4) of 8-column chunks per segment, as qk_pairs reads them: per chunk, per
// pair, 8 columns of head h then 8 of head h + 4; zero past each segment's width.
void mlra_small_prepare(const float *q, float scale, int heads, int key_w, int rope_w, float *out) {
    const int hp = padded_heads(heads), dk = key_w + rope_w;
    if (hp < 8) {
        for (long i = 0; i < (long)hp * dk; i++) out[i] = i < (long)heads * dk ? scale * q[i] : 0.0f;
        return;
    }
    float *o = out;
    for (int seg = 0; seg < 2; seg++) {
        const int width = seg == 0 ? key_w : rope_w, q0 = seg == 0 ? 0 : key_w;
        for (int c = 0; c < width; c += 8)
            for (int p = 0; p < hp / 2; p++)
                for (int half = 0; half < 2; half++) {
                    const int h = 8 * (p / 4) + p % 4 + 4 * half;
                    for (int e = 0; e < 8; e++, o++)
                        *o = h < heads && c + e < width ? scale * q[(long)h * dk + q0 + c + e] : 0.0f;
                }
    }
}

#if !defined(__x86_64__)
void mlra_avx512_small_group(const mlra_small_group *g, const void *rows, mlra_dtype dtype, long ld, long n) {
    (void)g; (void)rows; (void)dtype; (void)ld; (void)n; __builtin_trap();
}
#endif
