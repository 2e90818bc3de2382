// Hand-vectorised inner loops of the decode kernel, selected at run time.
//
// Why C: Swift has no per-function target attribute, so a Swift module is built
// for one ISA (MLRACore: Haswell / AVX2). These functions carry
// __attribute__((target("avx512..."))) and are only called after
// mlra_cpu_has_avx512() says the CPU runs them, so one binary serves nodes with
// and without AVX-512 (the Swift SIMD / OpenBLAS path is the fallback).
#ifndef MLRA_CKERNELS_H
#define MLRA_CKERNELS_H

#include <stdint.h>

/// 1 when the CPU (and OS) run AVX-512 F/BW/VL/DQ code, else 0.
int mlra_cpu_has_avx512(void);
/// 1 when the CPU runs AVX2 + FMA code, else 0.
int mlra_cpu_has_avx2(void);

/// The vector width of mlra_fma_loop.
typedef enum { MLRA_ISA_AVX2 = 1, MLRA_ISA_AVX512 = 2 } mlra_isa;

/// The storage type of cached rows the loops read (f16/bf16 converted in registers).
typedef enum { MLRA_DTYPE_F32 = 0, MLRA_DTYPE_F16 = 1, MLRA_DTYPE_BF16 = 2 } mlra_dtype;

/// Multiply-add loop with independent accumulators, `iterations` rounds; returns
/// the FLOPs done (a sink keeps the work): zmm for MLRA_ISA_AVX512, ymm for
/// MLRA_ISA_AVX2 (with FMA). The caller checks the CPU first.
double mlra_fma_loop(mlra_isa isa, long iterations);

/// One group of heads against one tile of cache rows (f32), online softmax.
/// Scores S[t][h] = Σ_c qt[c][h] · row_t[column(c)] over the key columns then the
/// RoPE columns; then per head: m' = max(m, max_t S), l' = l·e^(m−m') + Σ_t e^(S−m'),
/// acc[h][:] = acc[h][:]·e^(m−m') + Σ_t e^(S[t][h]−m') · row_t[value_off ..< +dv].
typedef struct {
    const float *qt;        // [key_w + rope_w][hp]: queries transposed, times the scale, heads hp.. zero
    int heads, hp;          // heads of the group; hp = heads rounded up to 16
    int key_off, key_w;     // key columns of a row
    int rope_off, rope_w;   // RoPE columns (rope_w may be 0)
    int value_off, dv;      // value columns
    float *row_max;         // [heads] running max
    float *row_sum;         // [heads] running sum
    float *acc;             // [heads][dv] running output
    float *scores;          // scratch: [tile][hp]
    float *correction;      // scratch: [hp]
    const char *prefetch;   // bytes to pull into cache while this tile is computed (the next tile), or NULL
    long prefetch_bytes;
    // mlra_avx512_group_tile_bf16 only (NULL otherwise): scratch of P in bf16 pairs
    // [(tile + 1) / 2][hp], and of the value columns of row pairs [(tile + 1) / 2][dv rounded up to 16].
    uint32_t *ppairs;
    uint32_t *vpairs;
} mlra_tile_group;

/// Requires AVX-512. `rows` holds n rows of ld floats.
void mlra_avx512_group_tile(const mlra_tile_group *g, const float *rows, long ld, int n);

/// 1 when the CPU runs AVX-512 F/BW/VL/DQ and AVX-512 BF16 (VDPBF16PS), else 0.
int mlra_cpu_has_avx512_bf16(void);

/// Requires AVX-512 BF16. mlra_fma_loop's chains with VDPBF16PS (32 multiply-adds each);
/// returns the FLOPs done.
double mlra_dpbf16_loop(long iterations);

/// Requires AVX-512 BF16. The same contract as mlra_avx512_group_tile on rows of bf16
/// (ld elements apart), with bf16 products and f32 sums: g->qt holds the queries as
/// mlra_tile_prepare_bf16 writes them, and g->ppairs, g->vpairs are set.
void mlra_avx512_group_tile_bf16(const mlra_tile_group *g, const uint16_t *rows, long ld, int n);

/// 32-bit words mlra_tile_prepare_bf16 writes for a group of hp (padded) heads.
long mlra_tile_prepared_bf16_count(int hp, int key_w, int rope_w);
/// The group's queries q [heads][key_w + rope_w], times `scale`, rounded to bf16 (nearest
/// even) as pairs along the columns: out[c / 2][h] = (q[h][c], q[h][c + 1]), key columns
/// then RoPE columns, each padded to an even count; heads heads ..< hp are zero.
void mlra_tile_prepare_bf16(const float *q, float scale, int heads, int hp, int key_w, int rope_w, uint32_t *out);

/// A group of 2 to 16 heads (GQA: the query heads of one KV head) against rows in
/// any storage type, f16/bf16 converted in registers once per element. Same
/// online-softmax contract as mlra_tile_group.
typedef struct {
    const float *q;         // the queries times the scale, laid out by mlra_small_prepare
    int heads;              // 2 ... 16
    int key_off, key_w, rope_off, rope_w, value_off, dv;
    float *row_max, *row_sum, *acc;   // [heads], [heads], [heads][dv]
    float *scores;          // scratch: MLRA_SMALL_SCORES floats
} mlra_small_group;

/// Floats mlra_small_prepare writes for a group of `heads` heads.
long mlra_small_prepared_count(int heads, int key_w, int rope_w);
/// The group's queries q [heads][key_w + rope_w], times `scale`, laid out for
/// mlra_avx512_small_group (heads padded; for 8 or 16 heads, in head pairs). Once per
/// step, so that the loops can be called on any number of row ranges.
void mlra_small_prepare(const float *q, float scale, int heads, int key_w, int rope_w, float *out);

/// Rows per sub-tile of mlra_avx512_small_group, and its score scratch (floats).
enum { MLRA_SMALL_SUBTILE = 64, MLRA_SMALL_SCORES = (MLRA_SMALL_SUBTILE + 16) * 16 };

/// Requires AVX-512. `rows`: n rows of ld elements of `dtype`.
void mlra_avx512_small_group(const mlra_small_group *g, const void *rows, mlra_dtype dtype, long ld, long n);

/// f32 copies of 16-bit values (AVX-512): bf16 by a 16-bit shift, f16 by VCVTPH2PS.
void mlra_avx512_bf16_to_f32(const uint16_t *src, float *dst, long count);
void mlra_avx512_f16_to_f32(const uint16_t *src, float *dst, long count);

#endif
