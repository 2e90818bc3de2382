// AVX-512 inner loops of TiledAttentionKernel for groups of many heads (the MLA
// family): per tile, scores as a register-blocked GEMM with heads along the
// vector lanes, the online softmax vectorised over heads, and P·V register-blocked
// over heads × 64 value columns. Arithmetic is f32 throughout (FMA).
#include "CKernels.h"

#if defined(__x86_64__)
#include <math.h>
#include "avx512_common.h"

// ---- Scores: S[t][h0 .. h0 + 16·HV) for tokens t0 .. t0 + TB ----------------------
// Accumulators HV × TB (≤ 24 of the 32 zmm registers); per column: HV vector loads
// of qt, TB broadcasts of row elements, HV·TB FMAs.
// `pf`, `lines`: cache lines to prefetch, one per column step of the key loop.
#define QK_BLOCK(HV, TB)                                                                         \
AVX512 void qk_##HV##_##TB(const mlra_tile_group *g, int h0, const float *rows, long ld, int t0, \
                           const char *pf, long lines) {                                         \
    __m512 acc[HV * TB];                                                                         \
    _Pragma("clang loop unroll(full)")                                                           \
    for (int i = 0; i < HV * TB; i++) acc[i] = _mm512_setzero_ps();                              \
    const int hp = g->hp;                                                                        \
    for (int seg = 0; seg < 2; seg++) {                                                          \
        const int width = seg == 0 ? g->key_w : g->rope_w;                                       \
        const float *q = g->qt + (long)(seg == 0 ? 0 : g->key_w) * hp + h0;                      \
        const float *r = rows + (long)t0 * ld + (seg == 0 ? g->key_off : g->rope_off);           \
        for (int c = 0; c < width; c++, q += hp) {                                               \
            if (seg == 0 && c < lines) _mm_prefetch(pf + 64 * c, _MM_HINT_T0);                  \
            __m512 qv[HV];                                                                       \
            _Pragma("clang loop unroll(full)")                                                   \
            for (int j = 0; j < HV; j++) qv[j] = _mm512_loadu_ps(q + 16 * j);                     \
            _Pragma("clang loop unroll(full)")                                                   \
            for (int i = 0; i < TB; i++) {                                                       \
                const __m512 k = _mm512_set1_ps(r[i * ld + c]);                                  \
                _Pragma("clang loop unroll(full)")                                               \
                for (int j = 0; j < HV; j++) acc[i * HV + j] = _mm512_fmadd_ps(qv[j], k, acc[i * HV + j]); \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    QK_STORE(HV, TB)                                                                             \
}
SCORE_BLOCKS(QK_BLOCK)

// The next tile streams in while this one is computed (QK_RUN, avx512_common.h): one
// line per column step of the key loop.
#define QK_RUN(HV, TB) QK_RUN_LINES(qk, HV, TB, g->key_w)

AVX512 void scores_tile(const mlra_tile_group *g, const float *rows, long ld, int n) {
    SCORE_CHUNKS(QK_RUN)
}

// ---- acc[h][c0 ..< c0 + 16·CB] for heads h0 .. h0 + HB: rescale, then += Σ_t P[t][h]·V[t] --
// Accumulators HB × CB; per row: CB vector loads of V, HB broadcasts of P, HB·CB FMAs.
// `last` masks the final vector of a column block that runs past dv.
#define PV_BLOCK(HB, CB)                                                                         \
AVX512 void pv_##HB##_##CB(const mlra_tile_group *g, int h0, int c0, __mmask16 last,             \
                           const float *rows, long ld, int n) {                                  \
    PV_ACC_LOAD(HB, CB)                                                                          \
    const float *v = rows + g->value_off + c0;                                                   \
    const float *p = g->scores + h0;                                                             \
    for (int t = 0; t < n; t++, v += ld, p += hp) {                                              \
        __m512 vv[CB];                                                                           \
        _Pragma("clang loop unroll(full)")                                                       \
        for (int j = 0; j < CB; j++)                                                             \
            vv[j] = _mm512_maskz_loadu_ps(j == CB - 1 ? last : (__mmask16)0xFFFF, v + 16 * j);   \
        _Pragma("clang loop unroll(full)")                                                       \
        for (int i = 0; i < HB; i++) {                                                           \
            const __m512 pb = _mm512_set1_ps(p[i]);                                              \
            _Pragma("clang loop unroll(full)")                                                   \
            for (int j = 0; j < CB; j++) acc[i * CB + j] = _mm512_fmadd_ps(pb, vv[j], acc[i * CB + j]); \
        }                                                                                        \
    }                                                                                            \
    PV_ACC_STORE(HB, CB)                                                                         \
}
PV_BLOCKS(PV_BLOCK)

#define PV_HEADS(CB) PV_HEADS_OF(pv, CB, rows, ld, n)

AVX512 void values_tile(const mlra_tile_group *g, const float *rows, long ld, int n) {
    VALUE_BLOCKS(PV_HEADS)
}

AVX512_FN void mlra_avx512_group_tile(const mlra_tile_group *g, const float *rows, long ld, int n) {
    scores_tile(g, rows, ld, n);
    softmax_tile(g, n);
    values_tile(g, rows, ld, n);
}

AVX512_FN void mlra_avx512_bf16_to_f32(const uint16_t *src, float *dst, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(x, 16)));
    }
    for (; i < count; i++) {
        const uint32_t bits = (uint32_t)src[i] << 16;
        __builtin_memcpy(dst + i, &bits, 4);
    }
}

AVX512_FN void mlra_avx512_f16_to_f32(const uint16_t *src, float *dst, long count) {
    long i = 0;
    for (; i + 16 <= count; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < count) {
        const __mmask16 m = (__mmask16)((1u << (count - i)) - 1u);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

#else
void mlra_avx512_group_tile(const mlra_tile_group *g, const float *rows, long ld, int n) {
    (void)g; (void)rows; (void)ld; (void)n; __builtin_trap();
}
void mlra_avx512_bf16_to_f32(const uint16_t *s, float *d, long n) { (void)s; (void)d; (void)n; __builtin_trap(); }
void mlra_avx512_f16_to_f32(const uint16_t *s, float *d, long n) { (void)s; (void)d; (void)n; __builtin_trap(); }
#endif
