// Shared by the AVX-512 loops (attention_avx512.c, attention_small_avx512.c,
// attention_bf16_avx512.c): the target attributes, the softmax's exp, and the large-group
// loops' online softmax and block dispatch. Private to CKernels.
#ifndef MLRA_AVX512_COMMON_H
#define MLRA_AVX512_COMMON_H

#include <immintrin.h>
#include <math.h>
#include "CKernels.h"

// Inlined helpers, and the functions that are called from outside (or dispatched to).
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"), always_inline)) static inline
#define AVX512_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

// exp(x) for the softmax: Cephes' expf (range reduction x = n·ln2 + r, degree-6
// polynomial on r), 2ⁿ applied by VSCALEFPS. Same algorithm and error (≤ 2 ulp on
// [−87, 88]) as fastExp in VectorMath.swift.
AVX512 __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

// ---- Large-group loops (mlra_tile_group; f32 and bf16 products) -------------------

// Online softmax over S[0 ..< n][·], 16 heads per vector: S becomes e^(S − new max).
AVX512 void softmax_tile(const mlra_tile_group *g, int n) {
    const int hp = g->hp;
    for (int h0 = 0; h0 < hp; h0 += 16) {
        const int live = g->heads - h0 < 16 ? g->heads - h0 : 16;
        const __mmask16 mask = (__mmask16)((1u << live) - 1u);
        __m512 top = _mm512_set1_ps(-INFINITY);
        float *s = g->scores + h0;
        for (int t = 0; t < n; t++) top = _mm512_max_ps(top, _mm512_loadu_ps(s + (long)t * hp));
        const __m512 old = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mask, g->row_max + h0);
        const __m512 now = _mm512_max_ps(old, top);
        // e^(old − now); 0 where nothing was seen yet (old = −∞).
        const __mmask16 seen = _mm512_cmp_ps_mask(old, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
        const __m512 corr = _mm512_maskz_mov_ps(seen, exp512(_mm512_sub_ps(old, now)));
        __m512 sum = _mm512_setzero_ps();
        for (int t = 0; t < n; t++) {
            const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(s + (long)t * hp), now));
            _mm512_storeu_ps(s + (long)t * hp, e);
            sum = _mm512_add_ps(sum, e);
        }
        const __m512 l = _mm512_mask_loadu_ps(_mm512_setzero_ps(), mask, g->row_sum + h0);
        _mm512_mask_storeu_ps(g->row_sum + h0, mask, _mm512_fmadd_ps(l, corr, sum));
        _mm512_mask_storeu_ps(g->row_max + h0, mask, now);
        _mm512_storeu_ps(g->correction + h0, corr);
    }
}

// The score blocks PREFIX_HV_TB over one head chunk h0 (scores_tile's switch), with the next
// tile streaming in while this one is computed: its lines are requested from the key loops
// of the first head chunk, at most LINES per block (one per key step), spread evenly over
// its token blocks (the first touch of a cold row would otherwise stall on DRAM latency;
// this machine's hardware prefetchers barely help). Only the key segment prefetches.
#define QK_RUN_LINES(PREFIX, HV, TB, LINES)                                                      \
    { int t = 0;                                                                                 \
      const long total = h0 == 0 && g->prefetch ? g->prefetch_bytes / 64 : 0;                    \
      const long per = (total + n / TB) / (n / TB + 1), most = (LINES);                          \
      long done = 0;                                                                             \
      for (; t + TB <= n; t += TB) {                                                             \
          const long k = per < total - done ? per : total - done;                                \
          PREFIX##_##HV##_##TB(g, h0, rows, ld, t, g->prefetch + 64 * done, k < most ? k : most); \
          done += k < most ? k : most;                                                           \
      }                                                                                          \
      for (; t < n; t++) PREFIX##_##HV##_1(g, h0, rows, ld, t, 0, 0);                            \
      for (; done < total; done++) _mm_prefetch(g->prefetch + 64 * done, _MM_HINT_T0); }

// The P·V blocks PREFIX_HB_CB (HB ≤ 6 heads) over every head of the group, for column block c0.
#define PV_HEADS_OF(PREFIX, CB, ...)                                                             \
    for (int h0 = 0; h0 < g->heads; h0 += 6) {                                                   \
        switch (g->heads - h0 >= 6 ? 6 : g->heads - h0) {                                        \
        case 6: PREFIX##_6_##CB(g, h0, c0, last, __VA_ARGS__); break;                            \
        case 5: PREFIX##_5_##CB(g, h0, c0, last, __VA_ARGS__); break;                            \
        case 4: PREFIX##_4_##CB(g, h0, c0, last, __VA_ARGS__); break;                            \
        case 3: PREFIX##_3_##CB(g, h0, c0, last, __VA_ARGS__); break;                            \
        case 2: PREFIX##_2_##CB(g, h0, c0, last, __VA_ARGS__); break;                            \
        default: PREFIX##_1_##CB(g, h0, c0, last, __VA_ARGS__); break;                           \
        }                                                                                        \
    }

// Every column block of the values: HEADS(4) over 64 columns at a time, then HEADS(1) over
// 16 (the last vector masked to dv), every head each time.
#define VALUE_BLOCKS(HEADS)                                                                      \
    int c0 = 0;                                                                                  \
    for (; c0 + 64 <= g->dv; c0 += 64) {                                                         \
        const __mmask16 last = 0xFFFF;                                                           \
        HEADS(4)                                                                                 \
    }                                                                                            \
    for (; c0 < g->dv; c0 += 16) {                                                               \
        const int rest = g->dv - c0 < 16 ? g->dv - c0 : 16;                                      \
        const __mmask16 last = (__mmask16)((1u << rest) - 1u);                                   \
        HEADS(1)                                                                                 \
    }

// The score blocks each large-group loop defines (BLOCK(heads / 16, tokens): ≤ 24 accumulators,
// and the one-token tails), and the chunks of 64 heads they run over: RUN(HV, TB) per chunk.
#define SCORE_BLOCKS(BLOCK) BLOCK(4, 6) BLOCK(4, 1) BLOCK(3, 8) BLOCK(3, 1) BLOCK(2, 12) BLOCK(2, 1) BLOCK(1, 16) BLOCK(1, 1)
#define SCORE_CHUNKS(RUN)                                                                        \
    for (int h0 = 0; h0 < g->hp; h0 += 64) {                                                     \
        switch ((g->hp - h0) >= 64 ? 4 : (g->hp - h0) / 16) {                                    \
        case 4: RUN(4, 6) break;                                                                 \
        case 3: RUN(3, 8) break;                                                                 \
        case 2: RUN(2, 12) break;                                                                \
        default: RUN(1, 16) break;                                                               \
        }                                                                                        \
    }

// A P·V block's accumulators acc[HB × CB] (heads h0 .., columns c0 .. in vectors of 16, the
// last masked by `last`): loaded times the head's correction e^(old max − new max), and
// stored back.
#define PV_ACC_LOAD(HB, CB)                                                                      \
    __m512 acc[HB * CB];                                                                         \
    const int dv = g->dv, hp = g->hp;                                                            \
    _Pragma("clang loop unroll(full)")                                                           \
    for (int i = 0; i < HB; i++) {                                                               \
        const __m512 corr = _mm512_set1_ps(g->correction[h0 + i]);                               \
        _Pragma("clang loop unroll(full)")                                                       \
        for (int j = 0; j < CB; j++) {                                                           \
            const __mmask16 m = j == CB - 1 ? last : (__mmask16)0xFFFF;                          \
            acc[i * CB + j] = _mm512_mul_ps(corr,                                                \
                _mm512_maskz_loadu_ps(m, g->acc + (long)(h0 + i) * dv + c0 + 16 * j));           \
        }                                                                                        \
    }
#define PV_ACC_STORE(HB, CB)                                                                     \
    _Pragma("clang loop unroll(full)")                                                           \
    for (int i = 0; i < HB; i++)                                                                 \
        _Pragma("clang loop unroll(full)")                                                       \
        for (int j = 0; j < CB; j++)                                                             \
            _mm512_mask_storeu_ps(g->acc + (long)(h0 + i) * dv + c0 + 16 * j,                    \
                                  j == CB - 1 ? last : (__mmask16)0xFFFF, acc[i * CB + j]);
// The blocks each loop defines: 1 to 6 heads × 4 or 1 vectors of 16 columns.
#define PV_BLOCKS(BLOCK) BLOCK(6, 4) BLOCK(5, 4) BLOCK(4, 4) BLOCK(3, 4) BLOCK(2, 4) BLOCK(1, 4) \
                         BLOCK(6, 1) BLOCK(5, 1) BLOCK(4, 1) BLOCK(3, 1) BLOCK(2, 1) BLOCK(1, 1)

// A score block's accumulators acc[TB × HV] into S[t0 + i][h0 + 16·j].
#define QK_STORE(HV, TB)                                                                         \
    _Pragma("clang loop unroll(full)")                                                           \
    for (int i = 0; i < TB; i++)                                                                 \
        _Pragma("clang loop unroll(full)")                                                       \
        for (int j = 0; j < HV; j++) _mm512_storeu_ps(g->scores + (long)(t0 + i) * hp + h0 + 16 * j, acc[i * HV + j]);

#endif
