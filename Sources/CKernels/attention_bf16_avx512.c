// bf16 products for the large-group loops (the MLA family, `--math auto` on a bf16
// cache): the same tile, online softmax and register blocking as attention_avx512.c, but
// the two products multiply bf16 pairs with f32 accumulation (VDPBF16PS, AVX-512 BF16),
// as GPU tensor cores and PyTorch's bf16 CPU kernels do. One VDPBF16PS does 32 multiply-
// adds where an f32 FMA does 16, and the rows are read as stored (no f32 copy of the tile).
//
// What is rounded (the stated tolerance, Tolerance.kernelAgreement(math: .bf16)):
// - the queries times the scale, to bf16, once per step (mlra_tile_prepare_bf16);
// - the softmax weights P, to bf16, before P·V (the running sum l keeps the f32 weights).
// The cached rows are bf16 already; every sum is f32.
//
// VDPBF16PS multiplies adjacent bf16 pairs along the reduction and adds both products to
// one f32 lane:
// - scores: the reduction runs along a row's key columns, which are adjacent in memory:
//   a row's 32-bit word (c, c + 1) is broadcast, the queries are stored as pairs
//   qp[c / 2][h] = (q[h][c], q[h][c + 1]), heads along the lanes as in the f32 loops;
// - P·V: the reduction runs over tokens, so two rows' value columns are interleaved once
//   per tile into vp[t / 2][c] = (V[t][c], V[t + 1][c]) (one pass over the value columns,
//   instead of a shuffle per head block), and P is stored as pairs pp[t / 2][h].
// An odd count (key or RoPE width, tile rows) is padded with a zero partner.
#include "CKernels.h"

#if defined(__x86_64__)
#include <math.h>
#include <string.h>
#include "avx512_common.h"

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma"), always_inline)) static inline
#define BF16_FN __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

int mlra_cpu_has_avx512_bf16(void) {
    __builtin_cpu_init();
    return mlra_cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
}

BF16 __m512 dp(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
}

// The 32-bit word of a row at element c: (c, c + 1), or (c, 0) when c is the last of an odd run.
BF16 __m512i pair_at(const uint16_t *r, int c, int width) {
    uint32_t w;
    if (c + 1 < width) memcpy(&w, r + c, 4);
    else w = r[c];
    return _mm512_set1_epi32((int)w);
}

// ---- Scores S[t][h0 .. h0 + 16·HV) for tokens t0 .. t0 + TB ------------------------
#define QKB_BLOCK(HV, TB)                                                                        \
BF16 void qkb_##HV##_##TB(const mlra_tile_group *g, int h0, const uint16_t *rows, long ld, int t0, \
                          const char *pf, long lines) {                                          \
    __m512 acc[HV * TB];                                                                         \
    _Pragma("clang loop unroll(full)")                                                           \
    for (int i = 0; i < HV * TB; i++) acc[i] = _mm512_setzero_ps();                              \
    const int hp = g->hp, kp = (g->key_w + 1) / 2;                                               \
    const uint32_t *qt = (const uint32_t *)g->qt;                                                \
    for (int seg = 0; seg < 2; seg++) {                                                          \
        const int width = seg == 0 ? g->key_w : g->rope_w;                                       \
        const uint32_t *q = qt + (long)(seg == 0 ? 0 : kp) * hp + h0;                            \
        const uint16_t *r = rows + (long)t0 * ld + (seg == 0 ? g->key_off : g->rope_off);        \
        for (int c = 0; c < width; c += 2, q += hp) {                                            \
            if (seg == 0 && c / 2 < lines) _mm_prefetch(pf + 64 * (c / 2), _MM_HINT_T0);        \
            __m512i qv[HV];                                                                      \
            _Pragma("clang loop unroll(full)")                                                   \
            for (int j = 0; j < HV; j++) qv[j] = _mm512_loadu_si512(q + 16 * j);                 \
            _Pragma("clang loop unroll(full)")                                                   \
            for (int i = 0; i < TB; i++) {                                                       \
                const __m512i k = pair_at(r + i * ld, c, width);                                 \
                _Pragma("clang loop unroll(full)")                                               \
                for (int j = 0; j < HV; j++) acc[i * HV + j] = dp(acc[i * HV + j], qv[j], k);     \
            }                                                                                    \
        }                                                                                        \
    }                                                                                            \
    QK_STORE(HV, TB)                                                                             \
}
SCORE_BLOCKS(QKB_BLOCK)

// The next tile's lines are requested one per column pair of the key loop (QK_RUN_LINES).
#define QKB_RUN(HV, TB) QK_RUN_LINES(qkb, HV, TB, (g->key_w + 1) / 2)

BF16 void scores_tile_bf16(const mlra_tile_group *g, const uint16_t *rows, long ld, int n) {
    SCORE_CHUNKS(QKB_RUN)
}

// ---- The softmax weights (after softmax_tile) in bf16 pairs of tokens ----------------
// pp[t / 2][h] = (P[t][h], P[t + 1][h]), rounded to nearest even; an odd last token pairs
// with 0. The running sums keep the f32 weights.
BF16 void pair_probabilities(const mlra_tile_group *g, int n) {
    const int hp = g->hp;
    for (int t = 0; t < n; t += 2) {
        const float *s0 = g->scores + (long)t * hp;
        uint32_t *pp = g->ppairs + (long)(t / 2) * hp;
        for (int h0 = 0; h0 < hp; h0 += 16) {
            const __m512 e0 = _mm512_loadu_ps(s0 + h0);
            const __m512 e1 = t + 1 < n ? _mm512_loadu_ps(s0 + hp + h0) : _mm512_setzero_ps();
            const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(e0));
            const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(e1));
            _mm512_storeu_si512(pp + h0, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

// ---- Value columns of two rows interleaved: vp[t / 2][c] = (V[t][c], V[t + 1][c]) -----
// Row stride of vp: dv rounded up to 16 words (zeros past dv), so the P·V loop loads
// whole vectors.
BF16 void interleave_values(const mlra_tile_group *g, const uint16_t *rows, long ld, int n) {
    const int dv = g->dv, ldv = (dv + 15) / 16 * 16;
    __m512i lo_idx, hi_idx;
    {
        uint16_t a[32], b[32];
        for (int i = 0; i < 16; i++) {
            a[2 * i] = (uint16_t)i; a[2 * i + 1] = (uint16_t)(32 + i);
            b[2 * i] = (uint16_t)(16 + i); b[2 * i + 1] = (uint16_t)(48 + i);
        }
        lo_idx = _mm512_loadu_si512(a); hi_idx = _mm512_loadu_si512(b);
    }
    for (int t = 0; t < n; t += 2) {
        const uint16_t *r0 = rows + (long)t * ld + g->value_off, *r1 = r0 + ld;
        const int second = t + 1 < n;
        uint32_t *out = g->vpairs + (long)(t / 2) * ldv;
        for (int c = 0; c < ldv; c += 32) {
            const int rest = dv - c;
            const __mmask32 m = rest >= 32 ? (__mmask32)0xFFFFFFFFu : rest <= 0 ? 0 : (__mmask32)((1u << rest) - 1u);
            const __m512i a = _mm512_maskz_loadu_epi16(m, r0 + c);
            const __m512i b = second ? _mm512_maskz_loadu_epi16(m, r1 + c) : _mm512_setzero_si512();
            _mm512_storeu_si512(out + c, _mm512_permutex2var_epi16(a, lo_idx, b));
            if (c + 16 < ldv) _mm512_storeu_si512(out + c + 16, _mm512_permutex2var_epi16(a, hi_idx, b));
        }
    }
}

// ---- acc[h][c0 ..< c0 + 16·CB] for heads h0 .. h0 + HB: rescale, then += Σ_t P[t][h]·V[t] --
// Accumulators HB × CB; per token pair: CB vector loads of vp, HB broadcasts of a P pair,
// HB·CB VDPBF16PS.
#define PVB_BLOCK(HB, CB)                                                                        \
BF16 void pvb_##HB##_##CB(const mlra_tile_group *g, int h0, int c0, __mmask16 last, int pairs) { \
    PV_ACC_LOAD(HB, CB)                                                                          \
    const int ldv = (dv + 15) / 16 * 16;                                                         \
    const uint32_t *v = g->vpairs + c0;                                                          \
    const uint32_t *p = g->ppairs + h0;                                                          \
    for (int t = 0; t < pairs; t++, v += ldv, p += hp) {                                         \
        __m512i vv[CB];                                                                          \
        _Pragma("clang loop unroll(full)")                                                       \
        for (int j = 0; j < CB; j++) vv[j] = _mm512_loadu_si512(v + 16 * j);                     \
        _Pragma("clang loop unroll(full)")                                                       \
        for (int i = 0; i < HB; i++) {                                                           \
            const __m512i pb = _mm512_set1_epi32((int)p[i]);                                     \
            _Pragma("clang loop unroll(full)")                                                   \
            for (int j = 0; j < CB; j++) acc[i * CB + j] = dp(acc[i * CB + j], pb, vv[j]);       \
        }                                                                                        \
    }                                                                                            \
    PV_ACC_STORE(HB, CB)                                                                         \
}
PV_BLOCKS(PVB_BLOCK)

#define PVB_HEADS(CB) PV_HEADS_OF(pvb, CB, pairs)

BF16 void values_tile_bf16(const mlra_tile_group *g, int n) {
    const int pairs = (n + 1) / 2;
    VALUE_BLOCKS(PVB_HEADS)
}

BF16_FN void mlra_avx512_group_tile_bf16(const mlra_tile_group *g, const uint16_t *rows, long ld, int n) {
    scores_tile_bf16(g, rows, ld, n);
    softmax_tile(g, n);
    pair_probabilities(g, n);
    interleave_values(g, rows, ld, n);
    values_tile_bf16(g, n);
}

static volatile float dp_sink;

// 12 independent chains of VDPBF16PS, as mlra_fma_loop's 12 FMA chains: 64 FLOPs each.
BF16_FN double mlra_dpbf16_loop(long iterations) {
    __m512 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(0.01f * i);
    __m512i x = _mm512_set1_epi32(0x3F803F80), y = _mm512_set1_epi32(0x3A803A80);   // bf16 1.0 and 2^-10
    for (long k = 0; k < iterations; k++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) a[i] = dp(a[i], x, y);
        __asm__ volatile("" : "+v"(x));   // keeps the loop from being folded
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    dp_sink = _mm512_reduce_add_ps(s);
    return (double)iterations * 12 * 16 * 4;
}

#else
double mlra_dpbf16_loop(long iterations) { (void)iterations; return 0; }
int mlra_cpu_has_avx512_bf16(void) { return 0; }
void mlra_avx512_group_tile_bf16(const mlra_tile_group *g, const uint16_t *rows, long ld, int n) {
    (void)g; (void)rows; (void)ld; (void)n; __builtin_trap();
}
#endif

// f32 → bf16, round to nearest even (finite inputs: the queries).
static uint32_t to_bf16(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
}

long mlra_tile_prepared_bf16_count(int hp, int key_w, int rope_w) {
    return (long)((key_w + 1) / 2 + (rope_w + 1) / 2) * hp;
}

void mlra_tile_prepare_bf16(const float *q, float scale, int heads, int hp, int key_w, int rope_w, uint32_t *out) {
    const int dk = key_w + rope_w, kp = (key_w + 1) / 2;
    memset(out, 0, (size_t)mlra_tile_prepared_bf16_count(hp, key_w, rope_w) * 4);
    for (int h = 0; h < heads; h++) {
        for (int c = 0; c < dk; c++) {
            // Column c of segment `seg` sits in pair (segment base + c' / 2), half c' % 2.
            const int seg = c >= key_w, cc = seg ? c - key_w : c;
            const long slot = (long)((seg ? kp : 0) + cc / 2) * hp + h;
            out[slot] |= to_bf16(scale * q[(long)h * dk + c]) << (16 * (cc % 2));
        }
    }
}
