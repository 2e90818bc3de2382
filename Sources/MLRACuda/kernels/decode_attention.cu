// Absorbed decode attention on the GPU (the CUDA side of MLRACore's AttentionKernel).
// Compiled at run time by NVRTC, once per shape: the host passes the shape as -D macros,
// so every loop bound below is a compile-time constant. No headers (NVRTC has none of
// CUDA's): 16-bit floats are carried as unsigned shorts and converted with PTX.
//
// Shapes (one kernel group: GROUP_HEADS query heads that read the same cached columns):
//   L   tokens of a sequence's cache, rows of ROW_W elements (ELEM: 0 bf16, 1 f16, 2 f32, CCuda.h's mlra_elem)
//   DK  = KEY_W + ROPE_W: key = row[key_off ..< +KEY_W] ++ row[rope_off ..< +ROPE_W]
//   DV  = VAL_W:          value = row[val_off ..< +VAL_W]
//   q   [B][QN] f32, per group [GROUP_HEADS][DK] at q_off;  out [B][ON] f32, per group [GROUP_HEADS][DV] at o_off
//   s(j) = scale · q·key(j);  out = Σ_j softmax(s)(j) · value(j)
// Scores are kept in the log2 domain (scale_log2 = scale · log2 e), so exp is exp2.
//
// Split-KV (flash-decoding): blockIdx = (group, split, sequence). A split covers
// `chunk` tokens; it leaves its partial state (running max m, sum l, unnormalised
// accumulator) in part_ml / part_acc, and decode_combine merges the splits exactly.
// With one split the kernel normalises and writes `out` itself.
//
// Group table (int[5] per group): key_off, rope_off, val_off, q_off, o_off.

typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef ELEM
#define ELEM 0
#endif
#define DK (KEY_W + ROPE_W)
#define DV VAL_W
#define NEG_INF (__int_as_float(0xff800000))

// Programmatic dependent launch (Hopper): a kernel launched with the programmatic-serialization
// attribute may start while the kernel before it still runs; grid_dependency_wait() returns once
// that kernel has finished and its writes are visible, grid_launch_dependents() lets the next one
// start. Both do nothing in a kernel launched without the attribute, and before sm_90.
__device__ __forceinline__ void grid_dependency_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void grid_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

__device__ __forceinline__ float elem_to_float(const void *base, u64 index) {
#if ELEM == 2
    return ((const float *)base)[index];
#else
    u16 h = ((const u16 *)base)[index];
#if ELEM == 0
    return __uint_as_float(((u32)h) << 16);
#else
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
#endif
#endif
}

// ---------------------------------------------------------------------------------
// decode_plain: the device-side reference. One block per (head, group, sequence),
// full scores in `scratch` ([B][groups][GROUP_HEADS][max_len] f32), two-pass softmax with
// expf, every element converted to f32 first. Slow and obviously right.
// ---------------------------------------------------------------------------------
__device__ float block_reduce(float v, bool is_max, float *red) {
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, w) : v + w;
    }
    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = is_max ? NEG_INF : 0.0f;
    for (int w = 0; w < (int)(blockDim.x / 32); w++) v = is_max ? fmaxf(v, red[w]) : v + red[w];
    return v;
}

extern "C" __global__ void decode_plain(const u64 *__restrict__ caches, const int *__restrict__ lengths,
                                        const int *__restrict__ gtab, int groups, const float *__restrict__ q,
                                        int QN, float *__restrict__ out, int ON, float scale,
                                        float *__restrict__ scratch, int max_len) {
    __shared__ float red[32];
    const int h = blockIdx.x, g = blockIdx.y, b = blockIdx.z;
    const int len = lengths[b];
    const void *rows = (const void *)caches[b];
    const int *t = gtab + 5 * g;
    const float *qh = q + (u64)b * QN + t[3] + h * DK;
    float *s = scratch + (((u64)b * groups + g) * GROUP_HEADS + h) * (u64)max_len;
    float m = NEG_INF;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        const u64 r = (u64)j * ROW_W;
        float acc = 0.0f;
        for (int c = 0; c < KEY_W; c++) acc += qh[c] * elem_to_float(rows, r + t[0] + c);
        for (int c = 0; c < ROPE_W; c++) acc += qh[KEY_W + c] * elem_to_float(rows, r + t[1] + c);
        s[j] = acc * scale;
        m = fmaxf(m, s[j]);
    }
    m = block_reduce(m, true, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < len; j += blockDim.x) {
        s[j] = expf(s[j] - m);
        sum += s[j];
    }
    sum = block_reduce(sum, false, red);
    __syncthreads();
    for (int c = threadIdx.x; c < DV; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < len; j++) acc += s[j] * elem_to_float(rows, (u64)j * ROW_W + t[2] + c);
        out[(u64)b * ON + t[4] + h * DV + c] = acc / sum;
    }
}

// ---------------------------------------------------------------------------------
// decode_combine: merges the splits of every (head, group, sequence):
//   M = max_s m_s;  out = Σ_s 2^(m_s−M)·acc_s / Σ_s 2^(m_s−M)·l_s
// Splits past a sequence's end left m = −inf, l = 0 and weigh nothing; their
// accumulators are never read. Block (head · column block, group, sequence), 256 threads: lane = one of 32 columns,
// warp = every 8th split, so that many independent loads are in flight (the partial
// states sit in the L2; a thread walking all splits alone was latency-bound).
// ---------------------------------------------------------------------------------
#define COMBINE_MAX_SPLITS 1024
#define COMBINE_CB ((DV + 31) / 32)
extern "C" __global__ void __launch_bounds__(256)
decode_combine(const float *__restrict__ part_ml, const float *__restrict__ part_acc, const int *__restrict__ gtab,
               int groups, int splits, float *__restrict__ out, int ON) {
    __shared__ float weight[COMBINE_MAX_SPLITS];
    __shared__ float red[8][33];
    const int h = blockIdx.x / COMBINE_CB, c = (blockIdx.x % COMBINE_CB) * 32 + threadIdx.x % 32;
    const int g = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32;
    const u64 base = (((u64)b * groups + g) * GROUP_HEADS + h) * (u64)splits;
    float M = NEG_INF;
    for (int s = threadIdx.x; s < splits; s += 256) M = fmaxf(M, part_ml[2 * (base + s)]);
    M = block_reduce(M, true, &red[0][0]);
    float L = 0.0f;
    for (int s = threadIdx.x; s < splits; s += 256) {
        const float m = part_ml[2 * (base + s)];
        const float w = m == NEG_INF ? 0.0f : exp2f(m - M);
        weight[s] = w;
        L += w * part_ml[2 * (base + s) + 1];
    }
    L = block_reduce(L, false, &red[0][0]);  // its barriers also publish weight[]
    __syncthreads();
    float acc = 0.0f;
    if (c < DV) {
#pragma unroll 4
        for (int s = warp; s < splits; s += 8) {
            // An empty split never wrote its accumulator (whatever the buffer holds, NaN included).
            const float w = weight[s];
            if (w != 0.0f) acc += w * part_acc[(base + s) * DV + c];
        }
    }
    red[warp][threadIdx.x % 32] = acc;
    __syncthreads();
    if (warp == 0 && c < DV) {
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) sum += red[w][threadIdx.x];
        out[(u64)b * ON + gtab[5 * g + 4] + h * DV + c] = sum / L;
    }
}

// ---------------------------------------------------------------------------------
// decode_combine_online: the same merge in one pass (the wgmma *-q and warps-pdl paths, launched
// as a programmatic dependent of the split kernel). decode_combine waits
// for three dependent rounds of L2 reads (the maxima, then the weights, then the accumulators,
// with block-wide reductions between them); here warp w walks splits w, w + 8, ... with its own
// running max, rescaling its sums as it goes, so that every load of the walk can be in flight at
// once, and the 8 warps merge once through shared memory. Same grid and block as decode_combine.
// ---------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(256)
decode_combine_online(const float *__restrict__ part_ml, const float *__restrict__ part_acc, const int *__restrict__ gtab,
                      int groups, int splits, float *__restrict__ out, int ON) {
    __shared__ float wm[8], wl[8], wacc[8][32];
    const int h = blockIdx.x / COMBINE_CB, c = (blockIdx.x % COMBINE_CB) * 32 + threadIdx.x % 32;
    const int g = blockIdx.y, b = blockIdx.z, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const u64 base = (((u64)b * groups + g) * GROUP_HEADS + h) * (u64)splits;
    const int col = c < DV ? c : DV - 1;  // lanes past the last column read a valid one and write nothing
    grid_dependency_wait();  // launched early behind the split kernel
    float m = NEG_INF, l = 0.0f, acc = 0.0f;  // m is the same in every lane of a warp
#pragma unroll 8
    for (int s = warp; s < splits; s += 8) {
        const float2 ml = ((const float2 *)part_ml)[base + s];
        const float a = part_acc[(base + s) * DV + col];
        // An empty split (m = −inf) never wrote its accumulator (whatever the buffer holds, NaN included).
        const bool live = ml.x != NEG_INF;
        const float mn = live ? fmaxf(m, ml.x) : m;
        const float scale = m == NEG_INF ? 0.0f : exp2f(m - mn);
        const float w = live ? exp2f(ml.x - mn) : 0.0f;
        acc = acc * scale + (live ? w * a : 0.0f);
        l = l * scale + w * ml.y;
        m = mn;
    }
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
    wacc[warp][lane] = acc;
    __syncthreads();
    if (warp == 0 && c < DV) {
        float M = NEG_INF;
#pragma unroll
        for (int w = 0; w < 8; w++) M = fmaxf(M, wm[w]);
        float L = 0.0f, sum = 0.0f;
#pragma unroll
        for (int w = 0; w < 8; w++) {
            const float x = wm[w] == NEG_INF ? 0.0f : exp2f(wm[w] - M);
            L += x * wl[w];
            sum += x * wacc[w][lane];
        }
        out[(u64)b * ON + gtab[5 * g + 4] + h * DV + c] = sum / L;
    }
}

#if defined(FAST_MMA) || defined(FAST_WARP) || defined(FAST_WGMMA)
// ---------------------------------------------------------------------------------
// What the two tensor-core kernels share: the block's shape, PTX wrappers (cp.async,
// ldmatrix, mma.sync m16n8k16), and the tile loader. HEADS: heads per block (≤
// GROUP_HEADS; a group's heads take HBLK blocks, so that the accumulators fit in
// registers); MT: 16-row tiles, a power of two ≥ HEADS/16.
// ---------------------------------------------------------------------------------
#define HBLK ((GROUP_HEADS + HEADS - 1) / HEADS)
#define MROWS (MT * 16)
#define NTHREADS (NWARPS * 32)
#define SCOLS (DK + (VAL_IS_KEY ? 0 : DV))  // columns of a row kept in shared memory
#define SROW (SCOLS + 8)                    // padded by 16 bytes against bank conflicts
#define VCOL0 (VAL_IS_KEY ? 0 : DK)         // first value column in shared memory

#if ELEM == 0
#define MMA_TYPE "bf16"
#else
#define MMA_TYPE "f16"
#endif

__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
#if ELEM == 0
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#endif
    return r;
}

__device__ __forceinline__ u16 to_elem(float f) { return (u16)(pack2(f, 0.0f) & 0xffffu); }

__device__ __forceinline__ u32 smem_addr(const void *p) { return (u32)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(u32 &r0, u32 &r1, u32 &r2, u32 &r3, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x2(u32 &r0, u32 &r1, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r0), "=r"(r1) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32 &r0, u32 &r1, u32 &r2, u32 &r3, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void mma16816(float *c, const u32 *a, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// A thread's shares of its two rows' sums, summed over the quad of threads that holds each row.
__device__ __forceinline__ void quad_sums(float &l0, float &l1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1); l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1); l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
}

// Source column of shared-memory column `c` (a multiple of 8).
__device__ __forceinline__ int source_column(int c, int key_off, int rope_off, int val_off) {
    if (c < KEY_W) return key_off + c;
    if (c < DK) return rope_off + (c - KEY_W);
    return val_off + (c - DK);
}

__device__ __forceinline__ void load_tile(u16 *tile, const u16 *rows, int start, int end, int key_off, int rope_off,
                                          int val_off) {
    constexpr int CHUNKS = SCOLS / 8;
    for (int i = threadIdx.x; i < TN * CHUNKS; i += NTHREADS) {
        const int r = i / CHUNKS, c = (i % CHUNKS) * 8;
        const int token = start + r;
        const bool valid = token < end;
        const u16 *src = rows + (u64)(valid ? token : start) * ROW_W + source_column(c, key_off, rope_off, val_off);
        cp_async16(tile + r * SROW + c, src, valid);
    }
}

// The first STAGES-1 tiles of a split, in flight before the block does anything else.
__device__ __forceinline__ void prefetch_tiles(u16 *tiles, const u16 *rows, int start, int end, int ntiles, int key_off,
                                               int rope_off, int val_off) {
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < ntiles) load_tile(tiles + s * TN * SROW, rows, start + s * TN, end, key_off, rope_off, val_off);
        cp_async_commit();
    }
}

// A split past its sequence's end: a partial state that weighs nothing (its accumulator
// is never read, decode_combine).
__device__ __forceinline__ void empty_split(float *part_ml, u64 pidx, int splits, int nh) {
    for (int h = threadIdx.x; h < nh; h += NTHREADS) {
        part_ml[2 * (pidx + (u64)h * splits)] = NEG_INF;
        part_ml[2 * (pidx + (u64)h * splits) + 1] = 0.0f;
    }
}
#endif  // FAST_MMA || FAST_WARP || FAST_WGMMA

#ifdef FAST_MMA
// ---------------------------------------------------------------------------------
// decode_mma: bf16/f16 caches on tensor cores (mma.sync m16n8k16, f32 accumulate).
// Per block: the group's queries (HEADS rows, padded to MT·16) in shared memory once;
// then tiles of TN tokens stream through STAGES shared buffers by cp.async (16-byte
// copies; only the key, rope and value columns of a row). Per tile:
//   1. S = Q·Kᵀ   [MT·16, TN]: warps split S_WM along heads × the rest along tokens
//   2. online softmax per head row (rescale factor alpha, running m and l)
//   3. O += P·V   [MT·16, DV]: warps split O_WM along heads × the rest along columns;
//      O stays in registers for the whole split.
// Extra macros: HEADS, MT, TN, STAGES, NWARPS, S_WM, O_WM, VAL_IS_KEY (value columns = key columns).
// ---------------------------------------------------------------------------------
#define QROW (DK + 8)
#define SSTRIDE (TN + 4)
#define PSTRIDE (TN + 8)
#define S_WN (NWARPS / S_WM)
#define S_MT (MT / S_WM)           // m-tiles per warp, score phase
#define S_NT (TN / 8 / S_WN)       // n-tiles (8 tokens) per warp, score phase
#define O_WN (NWARPS / O_WM)
#define O_MT (MT / O_WM)           // m-tiles per warp, value phase
#define O_NT (DV / 8 / O_WN)       // n-tiles (8 columns) per warp, value phase
#define TPR (NTHREADS / MROWS)     // threads per head row in the softmax


extern "C" __global__ void __launch_bounds__(NTHREADS, 1)
decode_mma(const u64 *__restrict__ caches, const int *__restrict__ lengths, const int *__restrict__ gtab, int groups,
           const float *__restrict__ q, int QN, float *__restrict__ out, int ON, float scale_log2, int splits, int chunk,
           float *__restrict__ part_ml, float *__restrict__ part_acc) {
    extern __shared__ __align__(16) unsigned char smem[];
    u16 *Qs = (u16 *)smem;                                   // [MROWS][QROW]
    u16 *tiles = Qs + MROWS * QROW;                          // [STAGES][TN][SROW]
    float *Ss = (float *)(tiles + STAGES * TN * SROW);       // [MROWS][SSTRIDE]
    u16 *Ps = (u16 *)(Ss + MROWS * SSTRIDE);                 // [MROWS][PSTRIDE]
    float *row_m = (float *)(Ps + MROWS * PSTRIDE);          // [MROWS]
    float *row_l = row_m + MROWS, *row_alpha = row_l + MROWS;

    const int g = blockIdx.x / HBLK, h0 = (blockIdx.x % HBLK) * HEADS, split = blockIdx.y, b = blockIdx.z;
    const int nh = min(HEADS, GROUP_HEADS - h0);
    const int *t = gtab + 5 * g;
    const int key_off = t[0], rope_off = t[1], val_off = t[2];
    const int len = lengths[b];
    const int start = split * chunk, end = min(len, start + chunk);
    // Partial state of head h0 + h: pidx + h·splits.
    const u64 pidx = (((u64)b * groups + g) * GROUP_HEADS + h0) * (u64)splits + split;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;

    if (start >= end) return empty_split(part_ml, pidx, splits, nh);
    const u16 *rows = (const u16 *)caches[b];
    const int ntiles = (end - start + TN - 1) / TN;

    // The first tiles, then the queries (converted to 16 bits) while they fly.
    prefetch_tiles(tiles, rows, start, end, ntiles, key_off, rope_off, val_off);
    const float *qg = q + (u64)b * QN + t[3] + (u64)h0 * DK;
    for (int i = tid; i < MROWS * DK; i += NTHREADS) {
        const int r = i / DK, c = i % DK;
        Qs[r * QROW + c] = to_elem(r < nh ? qg[r * DK + c] : 0.0f);
    }
    for (int r = tid; r < MROWS; r += NTHREADS) { row_m[r] = NEG_INF; row_l[r] = 0.0f; }

    float o[O_MT][O_NT][4];
#pragma unroll
    for (int i = 0; i < O_MT; i++)
#pragma unroll
        for (int j = 0; j < O_NT; j++) o[i][j][0] = o[i][j][1] = o[i][j][2] = o[i][j][3] = 0.0f;

    const int s_wm = warp % S_WM, s_wn = warp / S_WM;
    const int o_wm = warp % O_WM, o_wn = warp / O_WM;

    for (int tile_i = 0; tile_i < ntiles; tile_i++) {
        {   // keep STAGES-1 tiles in flight
            const int next = tile_i + STAGES - 1;
            if (next < ntiles)
                load_tile(tiles + (next % STAGES) * TN * SROW, rows, start + next * TN, end, key_off, rope_off, val_off);
            cp_async_commit();
        }
        cp_async_wait<STAGES - 1>();
        __syncthreads();
        const u16 *tile = tiles + (tile_i % STAGES) * TN * SROW;
        const int tile_start = start + tile_i * TN;

        // 1. S = Q·Kᵀ
        float sacc[S_MT][S_NT][4];
#pragma unroll
        for (int i = 0; i < S_MT; i++)
#pragma unroll
            for (int j = 0; j < S_NT; j++) sacc[i][j][0] = sacc[i][j][1] = sacc[i][j][2] = sacc[i][j][3] = 0.0f;
#pragma unroll 4
        for (int kk = 0; kk < DK / 16; kk++) {
            u32 a[S_MT][4];
#pragma unroll
            for (int i = 0; i < S_MT; i++) {
                const int mt = s_wm + i * S_WM;
                ldmatrix_x4(a[i][0], a[i][1], a[i][2], a[i][3], Qs + (mt * 16 + lane % 16) * QROW + kk * 16 + (lane / 16) * 8);
            }
#pragma unroll
            for (int j = 0; j < S_NT; j++) {
                const int nt = s_wn * S_NT + j;
                u32 b0, b1;
                ldmatrix_x2(b0, b1, tile + (nt * 8 + lane % 8) * SROW + kk * 16 + ((lane / 8) & 1) * 8);
#pragma unroll
                for (int i = 0; i < S_MT; i++) mma16816(sacc[i][j], a[i], b0, b1);
            }
        }
#pragma unroll
        for (int i = 0; i < S_MT; i++) {
            const int row = (s_wm + i * S_WM) * 16 + lane / 4;
#pragma unroll
            for (int j = 0; j < S_NT; j++) {
                const int col = (s_wn * S_NT + j) * 8 + (lane % 4) * 2;
                const bool v0 = tile_start + col < end, v1 = tile_start + col + 1 < end;
                Ss[row * SSTRIDE + col] = v0 ? sacc[i][j][0] * scale_log2 : NEG_INF;
                Ss[row * SSTRIDE + col + 1] = v1 ? sacc[i][j][1] * scale_log2 : NEG_INF;
                Ss[(row + 8) * SSTRIDE + col] = v0 ? sacc[i][j][2] * scale_log2 : NEG_INF;
                Ss[(row + 8) * SSTRIDE + col + 1] = v1 ? sacc[i][j][3] * scale_log2 : NEG_INF;
            }
        }
        __syncthreads();

        // 2. Online softmax: TPR neighbouring threads per head row.
        {
            const int row = tid / TPR, part = tid % TPR;
            constexpr int PER = TN / TPR;
            const float *srow = Ss + row * SSTRIDE + part * PER;
            float mx = NEG_INF;
#pragma unroll
            for (int c = 0; c < PER; c++) mx = fmaxf(mx, srow[c]);
#pragma unroll
            for (int w = TPR / 2; w > 0; w >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, w));
            const float m_old = row_m[row];
            const float m_new = fmaxf(m_old, mx);
            // m_new is finite: every tile holds at least one valid token.
            const float alpha = exp2f(m_old - m_new);
            float sum = 0.0f;
            u16 *prow = Ps + row * PSTRIDE + part * PER;
#pragma unroll
            for (int c = 0; c < PER; c += 2) {
                const float p0 = exp2f(srow[c] - m_new), p1 = exp2f(srow[c + 1] - m_new);
                sum += p0 + p1;
                *(u32 *)(prow + c) = pack2(p0, p1);
            }
#pragma unroll
            for (int w = TPR / 2; w > 0; w >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, w);
            __syncwarp();
            if (part == 0) {
                row_l[row] = row_l[row] * alpha + sum;
                row_m[row] = m_new;
                row_alpha[row] = alpha;
            }
        }
        __syncthreads();

        // 3. O = alpha·O + P·V
#pragma unroll
        for (int i = 0; i < O_MT; i++) {
            const int row = (o_wm + i * O_WM) * 16 + lane / 4;
            const float a0 = row_alpha[row], a1 = row_alpha[row + 8];
#pragma unroll
            for (int j = 0; j < O_NT; j++) { o[i][j][0] *= a0; o[i][j][1] *= a0; o[i][j][2] *= a1; o[i][j][3] *= a1; }
        }
#pragma unroll
        for (int kk = 0; kk < TN / 16; kk++) {
            u32 a[O_MT][4];
#pragma unroll
            for (int i = 0; i < O_MT; i++) {
                const int mt = o_wm + i * O_WM;
                ldmatrix_x4(a[i][0], a[i][1], a[i][2], a[i][3], Ps + (mt * 16 + lane % 16) * PSTRIDE + kk * 16 + (lane / 16) * 8);
            }
#pragma unroll
            for (int j = 0; j < O_NT; j += 2) {
                const int col = VCOL0 + (o_wn * O_NT + j) * 8;
                u32 b0, b1, b2, b3;
                ldmatrix_x4_trans(b0, b1, b2, b3, tile + (kk * 16 + (lane % 8) + ((lane / 8) & 1) * 8) * SROW + col + (lane / 16) * 8);
#pragma unroll
                for (int i = 0; i < O_MT; i++) {
                    mma16816(o[i][j], a[i], b0, b1);
                    mma16816(o[i][j + 1], a[i], b2, b3);
                }
            }
        }
        __syncthreads();  // the next iteration overwrites this stage and Ps
    }

    // Write the split's result: normalised output with one split, else the partial state.
#pragma unroll
    for (int i = 0; i < O_MT; i++) {
        const int r0 = (o_wm + i * O_WM) * 16 + lane / 4;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int h = r0 + half * 8;
            if (h >= nh) continue;
            const float inv_l = 1.0f / row_l[h];
#pragma unroll
            for (int j = 0; j < O_NT; j++) {
                const int col = (o_wn * O_NT + j) * 8 + (lane % 4) * 2;
                const float x0 = o[i][j][2 * half], x1 = o[i][j][2 * half + 1];
                if (splits == 1) {
                    float *dst = out + (u64)b * ON + t[4] + (h0 + h) * DV + col;
                    dst[0] = x0 * inv_l;
                    dst[1] = x1 * inv_l;
                } else {
                    float *dst = part_acc + (pidx + (u64)h * splits) * DV + col;
                    dst[0] = x0;
                    dst[1] = x1;
                }
            }
        }
    }
    if (splits > 1)
        for (int h = tid; h < nh; h += NTHREADS) {
            part_ml[2 * (pidx + (u64)h * splits)] = row_m[h];
            part_ml[2 * (pidx + (u64)h * splits) + 1] = row_l[h];
        }
}
#endif  // FAST_MMA

#ifdef FAST_WARP
// ---------------------------------------------------------------------------------
// decode_warps: bf16/f16 caches on tensor cores for groups whose value accumulators fit
// in one warp's registers (value width ≤ 128: MLRA-4, GQA, MQA, MHA). FlashAttention-2's
// decode layout: warp w owns head tile w mod MT and slice w / MT of WT tokens of
// each tile, with its own online softmax (max, sum, accumulator) in registers; the
// scores never leave the registers (the score accumulator is the A operand of P·V), so
// a tile costs one barrier, for the shared stage. The WSPLIT states of a head tile are
// merged once per block at the end. Queries are loaded into registers once.
// Extra macros: HEADS, MT, TN, STAGES, NWARPS (= MT·WSPLIT), VAL_IS_KEY.
// ---------------------------------------------------------------------------------
#define WSPLIT (NWARPS / MT)
#define WT (TN / WSPLIT)             // tokens of a tile per warp (a multiple of 16)

extern "C" __global__ void __launch_bounds__(NTHREADS)
decode_warps(const u64 *__restrict__ caches, const int *__restrict__ lengths, const int *__restrict__ gtab, int groups,
             const float *__restrict__ q, int QN, float *__restrict__ out, int ON, float scale_log2, int splits, int chunk,
             float *__restrict__ part_ml, float *__restrict__ part_acc) {
    extern __shared__ __align__(16) unsigned char smem[];
    u16 *tiles = (u16 *)smem;  // [STAGES][TN][SROW]; reused at the end for the warps' merge

    const int g = blockIdx.x / HBLK, h0 = (blockIdx.x % HBLK) * HEADS, split = blockIdx.y, b = blockIdx.z;
    const int nh = min(HEADS, GROUP_HEADS - h0);
    const int *t = gtab + 5 * g;
    const int key_off = t[0], rope_off = t[1], val_off = t[2];
    const int len = lengths[b];
    const int start = split * chunk, end = min(len, start + chunk);
    const u64 pidx = (((u64)b * groups + g) * GROUP_HEADS + h0) * (u64)splits + split;
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int mt = warp % MT, ws = warp / MT;
    const int gr = lane / 4, qc = lane % 4;  // fragment row (and row + 8), column pair

#ifdef PDL_COMBINE
    grid_launch_dependents();  // warps-pdl: decode_combine_online may be scheduled; it waits for this grid
#endif
    if (start >= end) return empty_split(part_ml, pidx, splits, nh);
    const u16 *rows = (const u16 *)caches[b];
    const int ntiles = (end - start + TN - 1) / TN;
    prefetch_tiles(tiles, rows, start, end, ntiles, key_off, rope_off, val_off);

    // Queries of rows mt·16 + gr (+8) as A fragments, straight from global memory.
    u32 qf[DK / 16][4];
    {
        const float *qg = q + (u64)b * QN + t[3] + (u64)h0 * DK;
        const int r0 = mt * 16 + gr, r1 = r0 + 8;
#pragma unroll
        for (int kk = 0; kk < DK / 16; kk++) {
            const int c0 = kk * 16 + qc * 2, c1 = c0 + 8;
            qf[kk][0] = r0 < nh ? pack2(qg[r0 * DK + c0], qg[r0 * DK + c0 + 1]) : 0u;
            qf[kk][1] = r1 < nh ? pack2(qg[r1 * DK + c0], qg[r1 * DK + c0 + 1]) : 0u;
            qf[kk][2] = r0 < nh ? pack2(qg[r0 * DK + c1], qg[r0 * DK + c1 + 1]) : 0u;
            qf[kk][3] = r1 < nh ? pack2(qg[r1 * DK + c1], qg[r1 * DK + c1 + 1]) : 0u;
        }
    }
    float o[DV / 8][4];
#pragma unroll
    for (int j = 0; j < DV / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;  // rows gr and gr + 8 (l: this thread's share)

    for (int tile_i = 0; tile_i < ntiles; tile_i++) {
        {
            const int next = tile_i + STAGES - 1;
            if (next < ntiles)
                load_tile(tiles + (next % STAGES) * TN * SROW, rows, start + next * TN, end, key_off, rope_off, val_off);
            cp_async_commit();
        }
        cp_async_wait<STAGES - 1>();
        __syncthreads();
        const u16 *tile = tiles + (tile_i % STAGES) * TN * SROW + ws * WT * SROW;  // this warp's tokens
        const int tok0 = start + tile_i * TN + ws * WT;

        float sc[WT / 8][4];
#pragma unroll
        for (int j = 0; j < WT / 8; j++) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < DK / 16; kk++) {
#pragma unroll
            for (int j = 0; j < WT / 8; j += 2) {
                u32 b0, b1, b2, b3;  // n-tiles j and j+1: tokens 8j.., k halves
                ldmatrix_x4(b0, b1, b2, b3, tile + (j * 8 + (lane / 16) * 8 + lane % 8) * SROW + kk * 16 + ((lane / 8) & 1) * 8);
                mma16816(sc[j], qf[kk], b0, b1);
                mma16816(sc[j + 1], qf[kk], b2, b3);
            }
        }
        // Online softmax on the fragments (log2 domain); the 4 threads of a quad share a row.
        float mx0 = NEG_INF, mx1 = NEG_INF;
#pragma unroll
        for (int j = 0; j < WT / 8; j++) {
            const int tok = tok0 + j * 8 + qc * 2;
            sc[j][0] = tok < end ? sc[j][0] * scale_log2 : NEG_INF;
            sc[j][1] = tok + 1 < end ? sc[j][1] * scale_log2 : NEG_INF;
            sc[j][2] = tok < end ? sc[j][2] * scale_log2 : NEG_INF;
            sc[j][3] = tok + 1 < end ? sc[j][3] * scale_log2 : NEG_INF;
            mx0 = fmaxf(mx0, fmaxf(sc[j][0], sc[j][1]));
            mx1 = fmaxf(mx1, fmaxf(sc[j][2], sc[j][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1)); mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1)); mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
        // A slice past the end with nothing before it keeps m = −inf: weights 0, no NaN.
        const float base0 = n0 == NEG_INF ? 0.0f : n0, base1 = n1 == NEG_INF ? 0.0f : n1;
        const float a0 = exp2f(m0 - base0), a1 = exp2f(m1 - base1);
        m0 = n0; m1 = n1;
        l0 *= a0; l1 *= a1;
#pragma unroll
        for (int j = 0; j < DV / 8; j++) { o[j][0] *= a0; o[j][1] *= a0; o[j][2] *= a1; o[j][3] *= a1; }
        u32 pf[WT / 16][4];
#pragma unroll
        for (int j = 0; j < WT / 8; j++) {
            const float p0 = exp2f(sc[j][0] - base0), p1 = exp2f(sc[j][1] - base0);
            const float p2 = exp2f(sc[j][2] - base1), p3 = exp2f(sc[j][3] - base1);
            l0 += p0 + p1; l1 += p2 + p3;
            pf[j / 2][(j % 2) * 2 + 0] = pack2(p0, p1);
            pf[j / 2][(j % 2) * 2 + 1] = pack2(p2, p3);
        }
        // O += P·V over this warp's WT tokens.
#pragma unroll
        for (int kk = 0; kk < WT / 16; kk++) {
#pragma unroll
            for (int j = 0; j < DV / 8; j += 2) {
                u32 b0, b1, b2, b3;
                ldmatrix_x4_trans(b0, b1, b2, b3, tile + (kk * 16 + (lane % 8) + ((lane / 8) & 1) * 8) * SROW + VCOL0 + j * 8 + (lane / 16) * 8);
                mma16816(o[j], pf[kk], b0, b1);
                mma16816(o[j + 1], pf[kk], b2, b3);
            }
        }
        __syncthreads();  // the next iteration's load overwrites a stage
    }
    cp_async_wait<0>();
    __syncthreads();

    // Merge the WSPLIT warps of each head tile: rows' m and l, then the accumulators.
    quad_sums(l0, l1);
    float *mrg_m = (float *)smem;                    // [WSPLIT][MROWS]
    float *mrg_l = mrg_m + WSPLIT * MROWS;           // [WSPLIT][MROWS]
    float *mrg_o = mrg_l + WSPLIT * MROWS;           // [WSPLIT][MROWS][DV]
    const int r0 = mt * 16 + gr;
    if (qc == 0) {
        mrg_m[ws * MROWS + r0] = m0; mrg_m[ws * MROWS + r0 + 8] = m1;
        mrg_l[ws * MROWS + r0] = l0; mrg_l[ws * MROWS + r0 + 8] = l1;
    }
#pragma unroll
    for (int j = 0; j < DV / 8; j++) {
        const int c = j * 8 + qc * 2;
        float *d0 = mrg_o + ((u64)ws * MROWS + r0) * DV + c, *d1 = d0 + 8 * DV;
        d0[0] = o[j][0]; d0[1] = o[j][1]; d1[0] = o[j][2]; d1[1] = o[j][3];
    }
    __syncthreads();
    for (int i = tid; i < nh * DV; i += NTHREADS) {
        const int h = i / DV, c = i % DV;
        float M = NEG_INF;
#pragma unroll
        for (int w = 0; w < WSPLIT; w++) M = fmaxf(M, mrg_m[w * MROWS + h]);
        const float base = M == NEG_INF ? 0.0f : M;
        float L = 0.0f, acc = 0.0f;
#pragma unroll
        for (int w = 0; w < WSPLIT; w++) {
            const float wgt = exp2f(mrg_m[w * MROWS + h] - base);
            L += wgt * mrg_l[w * MROWS + h];
            acc += wgt * mrg_o[((u64)w * MROWS + h) * DV + c];
        }
        if (splits == 1) {
            out[(u64)b * ON + t[4] + (h0 + h) * DV + c] = acc / L;
        } else {
            part_acc[(pidx + (u64)h * splits) * DV + c] = acc;
            if (c == 0) {
                part_ml[2 * (pidx + (u64)h * splits)] = M;
                part_ml[2 * (pidx + (u64)h * splits) + 1] = L;
            }
        }
    }
}
#endif  // FAST_WARP

#ifdef FAST_WGMMA
// ---------------------------------------------------------------------------------
// decode_wgmma: Hopper (sm_90a) kernel for the MLA family: values are the first key
// columns (the latent), and the heads of a group share every cached column. The mma.sync
// kernels read each key/value tile from shared memory once per 16-head tile, through the
// registers; wgmma reads it once per 64 heads, straight from shared memory, so at 64
// heads the shared-memory traffic drops 4× and the tensor cores stop waiting on it.
//
// Block: two warpgroups (256 threads) on one 64-row head block (a group's heads, padded
// with zero queries). Per iteration a pair of TN-token tiles streams in by cp.async;
// warpgroup w scores tile w of the pair (S_w = Q·K_wᵀ, both operands in shared memory),
// the two agree on one running max per head row, and each then accumulates its half of
// the value columns over both tiles: O_w += P_w·V_w[:, half w] (its own P from the
// registers) + P_{1−w}·V_{1−w}[:, half w] (the other's P through shared memory). The row
// sums stay per warpgroup and are added at the end.
//
// Shared layouts (what the wgmma descriptors below describe):
//   Q, key tiles: 128-byte swizzle (the TMA/wgmma SWIZZLE_128B pattern). An R × C matrix
//     of 16-bit elements is C/64 column blocks of R rows × 128 bytes; the 16-byte chunk c
//     of row r sits at chunk c ^ (r mod 8). Scores read it K-major (rows = heads or
//     tokens), P·V reads the same key tile N-major (rows = tokens, columns = values).
//   P: no swizzle, 8 × 8 core matrices of 128 bytes, K-major.
// Extra macros: TN (16, 32 or 64 tokens per tile), STAGES (pairs in flight).
// ---------------------------------------------------------------------------------
#define WG_ROWS 64
// A development timeline (benchmarks/gpu_wgmma_probe.cu, -DPROBE_TIMELINE): thread 0 of each
// split's block stamps the global timer at entry, after the prologue, after the loop and at exit.
#ifdef PROBE_TIMELINE
__device__ unsigned long long probe_timeline[1024][4];
#define TIMELINE(k)                                                                        \
    do {                                                                                   \
        if (threadIdx.x == 0) {                                                            \
            u64 t_;                                                                        \
            asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t_));                         \
            probe_timeline[blockIdx.y][k] = t_;                                            \
        }                                                                                  \
    } while (0)
#else
#define TIMELINE(k)
#endif
#define DKB (DK / 64)                      // 128-byte column blocks of a key row
#define DVH (DV / 2)                       // value columns per warpgroup
#define VNB (DVH / 64)                     // 64-column wgmma blocks per warpgroup
#define TILE_BYTES (TN * DK * 2)
#define PAIR_BYTES (2 * TILE_BYTES)
#define Q_BYTES (WG_ROWS * DK * 2)
#define P_BYTES (WG_ROWS * TN * 2)
#define P_SBO (TN * 16)                    // P: bytes between 8-row core-matrix groups
#define P_LBO 128                          // P: bytes between the two k halves of a k16 step
#ifdef P_DESC_SWAP
#define P_DESC(p) smem_desc(p, P_SBO, P_LBO, 0)
#else
#define P_DESC(p) smem_desc(p, P_LBO, P_SBO, 0)
#endif
#ifndef V_LBO
#define V_LBO 1024                         // N-major V: 64-column blocks (one per wgmma: unused, set like SBO)
#endif

__device__ __forceinline__ u32 sw128_offset(int row, int col) {  // byte offset in a block of 128-byte rows
    return row * 128 + ((((col >> 3) ^ row) & 7) << 4) + (col & 7) * 2;
}
// wgmma shared-memory matrix descriptor: start address, leading and stride byte offsets
// (16-byte units), layout (0: no swizzle, 1: 128-byte swizzle).
__device__ __forceinline__ u64 smem_desc(const void *p, u32 lbo, u32 sbo, u32 layout) {
    return (u64)((smem_addr(p) & 0x3FFFF) >> 4) | ((u64)(lbo >> 4) << 16) | ((u64)(sbo >> 4) << 32) | ((u64)layout << 62);
}
__device__ __forceinline__ u64 sw128_desc(const void *p) { return smem_desc(p, 16, 1024, 1); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
// Pins accumulator registers in place: without it the compiler may move their uses across
// wgmma.wait_group, which it does not know orders them.
template <int N> __device__ __forceinline__ void fence_operands(float *r) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(r[i])::"memory");
}
// The same for the register A operand of a wgmma (read asynchronously until the wait).
template <int N> __device__ __forceinline__ void fence_operands(u32 *r) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+r"(r[i])::"memory");
}

#define ACC4(d, i) "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3])
#define ACC16(d, i) ACC4(d, i), ACC4(d, i + 4), ACC4(d, i + 8), ACC4(d, i + 12)
// d[0..31] += A(smem) · B(smem), m64n64k16; TB: B is N-major.
template <int TB> __device__ __forceinline__ void wgmma_ss_n64(float *d, u64 a, u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_TYPE "." MMA_TYPE " "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "%32, %33, p, 1, 1, 0, %35;\n}\n"
                 : ACC16(d, 0), ACC16(d, 16)
                 : "l"(a), "l"(b), "r"(accumulate), "n"(TB));
}
// d[0..15] += A(smem) · B(smem), m64n32k16, B K-major.
__device__ __forceinline__ void wgmma_ss_n32(float *d, u64 a, u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32." MMA_TYPE "." MMA_TYPE " "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, "
                 "%16, %17, p, 1, 1, 0, 0;\n}\n"
                 : ACC16(d, 0)
                 : "l"(a), "l"(b), "r"(accumulate));
}
// d[0..7] += A(smem) · B(smem), m64n16k16, B K-major (decode_wgmma's 16-token tiles).
__device__ __forceinline__ void wgmma_ss_n16(float *d, u64 a, u64 b, int accumulate) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32." MMA_TYPE "." MMA_TYPE " "
                 "{%0, %1, %2, %3, %4, %5, %6, %7}, "
                 "%8, %9, p, 1, 1, 0, 0;\n}\n"
                 : ACC4(d, 0), ACC4(d, 4)
                 : "l"(a), "l"(b), "r"(accumulate));
}
// d[0..31] += A(registers: the m16n8k16 A fragment of this warp's 16 rows) · B(smem), m64n64k16, B N-major.
__device__ __forceinline__ void wgmma_rs_n64_nmajor(float *d, const u32 *a, u64 b) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32." MMA_TYPE "." MMA_TYPE " "
                 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                 "{%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
                 : ACC16(d, 0), ACC16(d, 16)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// S = Q·Kᵀ over one tile (scores of this thread's fragment: TN/2 floats, zeroed by the first step).
__device__ __forceinline__ void wgmma_scores(float *s, const unsigned char *Qs, const unsigned char *tile) {
#pragma unroll
    for (int kk = 0; kk < DK / 16; kk++) {
        const u64 a = sw128_desc(Qs + (kk / 4) * (WG_ROWS * 128) + (kk % 4) * 32);
        const u64 b = sw128_desc(tile + (kk / 4) * (TN * 128) + (kk % 4) * 32);
#if TN == 64
        wgmma_ss_n64<0>(s, a, b, kk > 0);
#elif TN == 32
        wgmma_ss_n32(s, a, b, kk > 0);
#else
        static_assert(TN == 16, "wgmma tiles are 16, 32 or 64 tokens");
        wgmma_ss_n16(s, a, b, kk > 0);
#endif
    }
}

// Rows tok0 ..< tok0 + NTOK (TN-token tiles, TILE_BYTES apart) into shared memory by NT
// threads (thread index ltid): only the key and RoPE columns. A warp copies whole rows, lane l
// the row's 16-byte chunks l, l + 32, ...: every address but the row's is fixed per lane, so
// a copy costs a few instructions (a flat index divided into row and chunk cost ~20, and the
// loads were a third of the kernel's instructions).
template <int NTOK, int NT>
__device__ __forceinline__ void load_key_rows(unsigned char *dst, const u16 *rows, int tok0, int end, int key_off, int rope_off,
                                              int ltid) {
    constexpr int CH = DK / 8, PASSES = (CH + 31) / 32, WARPS = NT / 32;
    static_assert(NTOK % WARPS == 0, "every warp copies the same number of rows");
    const int lane = ltid % 32, warp = ltid / 32;
    int src[PASSES];
    u32 col[PASSES];  // byte offset of the chunk in its column block, before the swizzle
#pragma unroll
    for (int k = 0; k < PASSES; k++) {
        const int c = (lane + 32 * k) * 8;
        src[k] = c < KEY_W ? key_off + c : rope_off + (c - KEY_W);
        col[k] = (c / 64) * (TN * 128) + ((c % 64) / 8);
    }
#pragma unroll 4
    for (int i = 0; i < NTOK / WARPS; i++) {
        const int r2 = warp + i * WARPS, w = r2 / TN, r = r2 % TN, token = tok0 + r2;
        const bool valid = token < end;
        const u16 *row = rows + (u64)(valid ? token : tok0) * ROW_W;
        unsigned char *base = dst + w * TILE_BYTES + r * 128;
#pragma unroll
        for (int k = 0; k < PASSES; k++) {
            if (lane + 32 * k < CH) {
                const u32 chunk = col[k] & 7u, block = col[k] & ~7u;
                cp_async16(base + block + ((chunk ^ (r & 7)) << 4), row + src[k], valid);
            }
        }
    }
}

// The block's queries (nh rows of DK f32 at qg; rows nh ..< 64 zero), converted to 16 bits into
// the swizzled Qs, by all threads. The loads of QB chunks are issued before any is used: the
// queries come from the L2, and a loop that waits for each chunk in turn cost microseconds
// per block (MLA's 64 × 576 queries are 18 chunks per thread). Every block reads the same
// queries at the same moment; each starts at its own chunk (rot), so that they do not all
// queue at the same L2 lines.
__device__ __forceinline__ void load_queries(unsigned char *Qs, const float *qg, int nh, int rot) {
    constexpr int CH = DK / 8, N = WG_ROWS * CH, PER = (N + NTHREADS - 1) / NTHREADS, QB = PER < 6 ? PER : 6;
    rot %= PER;
#pragma unroll
    for (int k0 = 0; k0 < PER; k0 += QB) {
        float4 v[QB][2];
#pragma unroll
        for (int k = 0; k < QB; k++) {
            const int kr = k0 + k + rot < PER ? k0 + k + rot : k0 + k + rot - PER;
            const int i = threadIdx.x + kr * NTHREADS, r = i / CH, c = (i % CH) * 8;
            const bool live = k0 + k < PER && i < N && r < nh;
            const float4 *src = (const float4 *)(qg + r * DK + c);
            v[k][0] = live ? src[0] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            v[k][1] = live ? src[1] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int k = 0; k < QB; k++) {
            const int kr = k0 + k + rot < PER ? k0 + k + rot : k0 + k + rot - PER;
            const int i = threadIdx.x + kr * NTHREADS, r = i / CH, c = (i % CH) * 8;
            if (k0 + k < PER && i < N)
                *(uint4 *)(Qs + (c / 64) * (WG_ROWS * 128) + sw128_offset(r, c)) =
                    make_uint4(pack2(v[k][0].x, v[k][0].y), pack2(v[k][0].z, v[k][0].w), pack2(v[k][1].x, v[k][1].y),
                               pack2(v[k][1].z, v[k][1].w));
        }
    }
}

#ifdef QPREP
// ---------------------------------------------------------------------------------
// The query image (the wgmma *-q paths): the 64 query rows of a head block, converted to
// 16 bits and laid out as Qs (128-byte swizzle, column blocks of 64), once per step in global
// memory: qimg [B][groups·HBLK][Q_BYTES], at the split kernel's (blockIdx.z, blockIdx.x). Every
// split block then copies its Q_BYTES with cp.async beside its first tiles, where load_queries
// had each of the ~132 blocks read the f32 queries (twice the bytes, all blocks at the same
// lines at the same moment), convert and store them before its loop could start: 2.6-6 µs of a
// block's prologue on an H200 (docs/gpu-kernels.md). Grid (groups·HBLK, QPREP_SLICES, B), one
// 16-byte chunk of the image per thread, so that all loads are in flight at once: the split
// kernel waits for this grid to end.
// ---------------------------------------------------------------------------------
#define QPREP_SLICES ((WG_ROWS * DK / 8 + 255) / 256)
extern "C" __global__ void __launch_bounds__(256)
decode_qprep(const int *__restrict__ gtab, int groups, const float *__restrict__ q, int QN, unsigned char *__restrict__ qimg) {
    grid_launch_dependents();  // the split kernel may start its tile loads now; it waits for this grid before reading qimg
    constexpr int CH = DK / 8;
    const int i = blockIdx.y * 256 + threadIdx.x;
    if (i >= WG_ROWS * CH) return;
    const int g = blockIdx.x / HBLK, h0 = (blockIdx.x % HBLK) * WG_ROWS, b = blockIdx.z;
    const int nh = min(WG_ROWS, GROUP_HEADS - h0);
    const int r = i / CH, c = (i % CH) * 8;
    float4 v0 = make_float4(0.0f, 0.0f, 0.0f, 0.0f), v1 = v0;
    if (r < nh) {
        const float4 *src = (const float4 *)(q + (u64)b * QN + gtab[5 * g + 3] + (u64)(h0 + r) * DK + c);
        v0 = src[0]; v1 = src[1];
    }
    unsigned char *dst = qimg + ((u64)b * gridDim.x + blockIdx.x) * Q_BYTES;
    *(uint4 *)(dst + (c / 64) * (WG_ROWS * 128) + sw128_offset(r, c)) =
        make_uint4(pack2(v0.x, v0.y), pack2(v0.z, v0.w), pack2(v1.x, v1.y), pack2(v1.z, v1.w));
}

// The block's query image (decode_qprep's) into Qs by cp.async, by all NTHREADS threads (one
// commit group, the caller's). Called after the first tile's loads: they do not depend on
// decode_qprep, the image does (grid_dependency_wait).
__device__ __forceinline__ void copy_query_image(unsigned char *Qs, const float *q) {
    const unsigned char *img = (const unsigned char *)q + ((u64)blockIdx.z * gridDim.x + blockIdx.x) * Q_BYTES;
    grid_dependency_wait();
#pragma unroll
    for (int i = threadIdx.x; i < Q_BYTES / 16; i += NTHREADS) cp_async16(Qs + 16 * i, img + 16 * i, true);
}
#endif  // QPREP

// Masks and scales one tile's scores (s[4j + e]: row r0 for e < 2, else r1; token tok0 + 8j +
// 2·qc + (e & 1)) and returns the tile's row maxima over the quad that holds each row.
__device__ __forceinline__ void tile_maxima(float *s, int tok0, int end, int qc, float scale_log2, float &mx0, float &mx1) {
    mx0 = NEG_INF; mx1 = NEG_INF;
    const bool full = tok0 + TN <= end;  // the common case: no token of the tile to mask
#pragma unroll
    for (int j = 0; j < TN / 8; j++) {
        const int tok = tok0 + j * 8 + qc * 2;
#pragma unroll
        for (int e = 0; e < 4; e++) s[4 * j + e] = full || tok + (e & 1) < end ? s[4 * j + e] * scale_log2 : NEG_INF;
        mx0 = fmaxf(mx0, fmaxf(s[4 * j], s[4 * j + 1]));
        mx1 = fmaxf(mx1, fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1)); mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1)); mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
}

// Rows r0 and r1 of NB 64-column accumulator blocks times a0 and a1 (skipped when the
// warp's running maxima did not move).
template <int NB> __device__ __forceinline__ void scale_acc(float (*o)[32], float a0, float a1) {
    if (__any_sync(0xffffffffu, a0 != 1.0f || a1 != 1.0f)) {
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int j = 0; j < 8; j++) { o[n][4 * j] *= a0; o[n][4 * j + 1] *= a0; o[n][4 * j + 2] *= a1; o[n][4 * j + 3] *= a1; }
    }
}

// The running max moves to (n0, n1): rescales the sums and returns the exponent bases (0 for a
// row that has seen nothing yet) and the accumulators' factors a0, a1.
__device__ __forceinline__ void move_max(float &m0, float &m1, float &l0, float &l1, float n0, float n1, float &base0, float &base1,
                                         float &a0, float &a1) {
    base0 = n0 == NEG_INF ? 0.0f : n0; base1 = n1 == NEG_INF ? 0.0f : n1;
    a0 = exp2f(m0 - base0); a1 = exp2f(m1 - base1);
    m0 = n0; m1 = n1;
    l0 *= a0; l1 *= a1;
}

// Waits for the 128 threads of warpgroup wg (named barriers 1 and 2; 0 is __syncthreads).
__device__ __forceinline__ void warpgroup_barrier(int wg) { asm volatile("bar.sync %0, 128;\n" ::"r"(wg + 1) : "memory"); }

#define STAGE_STRIDE(ncols) ((ncols) + 8)  // f32 per staged row: 8 more spreads a fragment store over the banks
// The result of one warpgroup (wg) for its head rows r0, r1 and value columns col0 ..< col0 +
// NB·64. One split: normalised into `out` from the fragments (output offsets of other groups
// need not be even). Else the partial state for decode_combine, through `stage` (shared,
// 64 × STAGE_STRIDE(NB·64) f32, free for this warpgroup): a warp then writes a head's row
// with 16-byte stores, where the fragments wrote 32-byte pieces of 8 rows per instruction
// (about 9 GB/s per SM, MLA's 128 KiB of partials took 14 µs a block). m/L: the rows' max
// and total sum, written by the threads with write_ml.
template <int NB>
__device__ __forceinline__ void write_rows(float (*o)[32], float *stage, int wg, int col0, int r0, int r1, int nh, int qc, float m0,
                                           float m1, float L0, float L1, bool write_ml, int splits, u64 pidx, float *out, int ON,
                                           int o_off, int h0, int b, float *part_ml, float *part_acc) {
    constexpr int NC = NB * 64, SS = STAGE_STRIDE(NC);
    if (splits == 1) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int h = half ? r1 : r0;
            if (h >= nh) continue;
            const float inv_l = 1.0f / (half ? L1 : L0);
            float *dst = out + (u64)b * ON + o_off + (h0 + h) * DV + col0;
#pragma unroll
            for (int n = 0; n < NB; n++)
#pragma unroll
                for (int j = 0; j < 8; j++) {
                    const int col = n * 64 + j * 8 + qc * 2;
                    dst[col] = o[n][4 * j + 2 * half] * inv_l;
                    dst[col + 1] = o[n][4 * j + 2 * half + 1] * inv_l;
                }
        }
        return;
    }
#pragma unroll
    for (int n = 0; n < NB; n++)
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int col = n * 64 + j * 8 + qc * 2;
            *(float2 *)(stage + r0 * SS + col) = make_float2(o[n][4 * j], o[n][4 * j + 1]);
            *(float2 *)(stage + r1 * SS + col) = make_float2(o[n][4 * j + 2], o[n][4 * j + 3]);
        }
    if (write_ml && qc == 0) {
        if (r0 < nh) { part_ml[2 * (pidx + (u64)r0 * splits)] = m0; part_ml[2 * (pidx + (u64)r0 * splits) + 1] = L0; }
        if (r1 < nh) { part_ml[2 * (pidx + (u64)r1 * splits)] = m1; part_ml[2 * (pidx + (u64)r1 * splits) + 1] = L1; }
    }
    warpgroup_barrier(wg);
    const int lane = threadIdx.x % 32, warp = (threadIdx.x % 128) / 32;
    for (int h = warp; h < nh; h += 4) {
        float *dst = part_acc + (pidx + (u64)h * splits) * DV + col0;
#pragma unroll
        for (int c = lane * 4; c < NC; c += 128) *(float4 *)(dst + c) = *(const float4 *)(stage + h * SS + c);
    }
}

#if NWARPS == 8  // (a decode_wgmma_solo build with more warpgroups has no two-warpgroup kernel)
extern "C" __global__ void __launch_bounds__(256, 1)
decode_wgmma(const u64 *__restrict__ caches, const int *__restrict__ lengths, const int *__restrict__ gtab, int groups,
             const float *__restrict__ q, int QN, float *__restrict__ out, int ON, float scale_log2, int splits, int chunk,
             float *__restrict__ part_ml, float *__restrict__ part_acc) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    // The swizzle pattern repeats every 1024 bytes: every matrix starts on such a boundary.
    unsigned char *smem = smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u);
    unsigned char *Qs = smem;                              // [DKB][64 rows][128 B], swizzled
    unsigned char *tiles = Qs + Q_BYTES;                   // [STAGES][2 tiles][DKB][TN rows][128 B], swizzled
    unsigned char *Ps = tiles + STAGES * PAIR_BYTES;       // [2][64 × TN], core matrices
    static_assert(STAGES * PAIR_BYTES >= 2 * WG_ROWS * STAGE_STRIDE(DVH) * 4, "the result is staged in the tiles");
    float *xmax = (float *)(Ps + 2 * P_BYTES);             // [2][64]: each warpgroup's tile maxima
    float *lsum = xmax + 2 * WG_ROWS;                      // [2][64]: row sums at the end

    const int g = blockIdx.x / HBLK, h0 = (blockIdx.x % HBLK) * WG_ROWS, split = blockIdx.y, b = blockIdx.z;
    const int nh = min(WG_ROWS, GROUP_HEADS - h0);
    const int *t = gtab + 5 * g;
    const int key_off = t[0], rope_off = t[1];
    const int len = lengths[b];
    const int start = split * chunk, end = min(len, start + chunk);
    const u64 pidx = (((u64)b * groups + g) * GROUP_HEADS + h0) * (u64)splits + split;
    const int tid = threadIdx.x, wg = tid / 128, lane = tid % 32;
    const int r0 = ((tid % 128) / 32) * 16 + lane / 4, r1 = r0 + 8;  // this thread's two head rows
    const int qc = lane % 4;

    TIMELINE(0);
#ifdef QPREP
    grid_launch_dependents();  // decode_combine_online may be scheduled; it waits for this grid
#endif
    if (start >= end) return empty_split(part_ml, pidx, splits, nh);
    const u16 *rows = (const u16 *)caches[b];
    const int npairs = (end - start + 2 * TN - 1) / (2 * TN);

    // Commit groups: pair 0, [the query image,] pairs 1 ..< STAGES − 1; the loop's wait for pair p
    // then also covers the image.
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < npairs) load_key_rows<2 * TN, NTHREADS>(tiles + s * PAIR_BYTES, rows, start + s * 2 * TN, end, key_off, rope_off, tid);
        cp_async_commit();
#ifdef QPREP
        if (s == 0) { copy_query_image(Qs, q); cp_async_commit(); }
#endif
    }
#ifndef QPREP
    load_queries(Qs, q + (u64)b * QN + t[3] + (u64)h0 * DK, nh, split);  // while the first tiles fly
#endif
    TIMELINE(1);

    float o[VNB][32];
#pragma unroll
    for (int n = 0; n < VNB; n++)
#pragma unroll
        for (int e = 0; e < 32; e++) o[n][e] = 0.0f;
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;  // rows r0, r1 (l: this thread's share)
    unsigned char *my_p = Ps + wg * P_BYTES;
    const unsigned char *other_p = Ps + (1 - wg) * P_BYTES;

    for (int p = 0; p < npairs; p++) {
        cp_async_wait<STAGES - 2>();
        fence_proxy_async();  // the generic-proxy writes (cp.async, Q) become visible to wgmma
        __syncthreads();      // pair p is in; everyone is done with pair p − 1, its P and maxima
        {
            const int next = p + STAGES - 1;
            if (next < npairs)
                load_key_rows<2 * TN, NTHREADS>(tiles + (next % STAGES) * PAIR_BYTES, rows, start + next * 2 * TN, end, key_off, rope_off, tid);
            cp_async_commit();
        }
        const unsigned char *stage = tiles + (p % STAGES) * PAIR_BYTES;
        const unsigned char *mine = stage + wg * TILE_BYTES, *theirs = stage + (1 - wg) * TILE_BYTES;
        const int tok0 = start + p * 2 * TN + wg * TN;

        float s[TN / 2];
        wgmma_fence();
        wgmma_scores(s, Qs, mine);
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands<TN / 2>(s);

        float mx0, mx1;
        tile_maxima(s, tok0, end, qc, scale_log2, mx0, mx1);
        if (qc == 0) { xmax[wg * WG_ROWS + r0] = mx0; xmax[wg * WG_ROWS + r1] = mx1; }
        __syncthreads();
        // Both warpgroups compute the same new max from the same values.
        const float n0 = fmaxf(m0, fmaxf(xmax[r0], xmax[WG_ROWS + r0]));
        const float n1 = fmaxf(m1, fmaxf(xmax[r1], xmax[WG_ROWS + r1]));
        float base0, base1, a0, a1;
        move_max(m0, m1, l0, l1, n0, n1, base0, base1, a0, a1);
        scale_acc<VNB>(o, a0, a1);
        u32 pf[TN / 16][4];
#pragma unroll
        for (int j = 0; j < TN / 8; j++) {
            const float p0 = exp2f(s[4 * j] - base0), p1 = exp2f(s[4 * j + 1] - base0);
            const float p2 = exp2f(s[4 * j + 2] - base1), p3 = exp2f(s[4 * j + 3] - base1);
            l0 += p0 + p1; l1 += p2 + p3;
            const u32 lo = pack2(p0, p1), hi = pack2(p2, p3);
            pf[j / 2][(j % 2) * 2 + 0] = lo;
            pf[j / 2][(j % 2) * 2 + 1] = hi;
            // The other warpgroup's copy: core matrix (row / 8, token / 8), 16 bytes per row.
            const int col = j * 8 + qc * 2;
            *(u32 *)(my_p + (r0 / 8) * P_SBO + (col / 8) * 128 + (r0 % 8) * 16 + (col % 8) * 2) = lo;
            *(u32 *)(my_p + (r1 / 8) * P_SBO + (col / 8) * 128 + (r1 % 8) * 16 + (col % 8) * 2) = hi;
        }
        fence_proxy_async();

#pragma unroll
        for (int n = 0; n < VNB; n++) fence_operands<32>(o[n]);
        fence_operands<TN / 4>(&pf[0][0]);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < TN / 16; kk++)
#pragma unroll
            for (int n = 0; n < VNB; n++)
                wgmma_rs_n64_nmajor(o[n], pf[kk], smem_desc(mine + (wg * VNB + n) * (TN * 128) + kk * 2048, V_LBO, 1024, 1));
        wgmma_commit();
        __syncthreads();  // the other warpgroup's P is in shared memory
#pragma unroll
        for (int kk = 0; kk < TN / 16; kk++)
#pragma unroll
            for (int n = 0; n < VNB; n++)
                wgmma_ss_n64<1>(o[n], P_DESC(other_p + kk * 256),
                                smem_desc(theirs + (wg * VNB + n) * (TN * 128) + kk * 2048, V_LBO, 1024, 1), 1);
        wgmma_commit();
        wgmma_wait<0>();
#pragma unroll
        for (int n = 0; n < VNB; n++) fence_operands<32>(o[n]);
        fence_operands<TN / 4>(&pf[0][0]);
    }
    cp_async_wait<0>();
    TIMELINE(2);

    quad_sums(l0, l1);
    if (qc == 0) { lsum[wg * WG_ROWS + r0] = l0; lsum[wg * WG_ROWS + r1] = l1; }
    __syncthreads();
    const float L0 = lsum[r0] + lsum[WG_ROWS + r0], L1 = lsum[r1] + lsum[WG_ROWS + r1];
    // The tiles are free (the barrier above followed every warpgroup's last products).
    write_rows<VNB>(o, (float *)tiles + wg * WG_ROWS * STAGE_STRIDE(DVH), wg, wg * DVH, r0, r1, nh, qc, m0, m1, L0, L1, wg == 0, splits,
                    pidx, out, ON, t[4], h0, b, part_ml, part_acc);
    TIMELINE(3);
}
#endif  // NWARPS == 8
#ifdef WG_SOLO
// ---------------------------------------------------------------------------------
// decode_wgmma_solo: the same wgmma tiles for groups whose value accumulator fits one
// warpgroup's registers (value width ≤ 256: MLRA-4, MLRA-2, GLA-2). Each warpgroup runs its
// own split of the tiles (tile i of the block's chunk goes to warpgroup i mod 2) with its own
// ring of STAGES tiles, its own online softmax and all of the value columns, and waits only
// on its own 128 threads (named barriers 1 and 2). The two warpgroups never wait on each
// other inside the loop, so one's softmax runs while the other's products keep the tensor
// cores busy; they merge their states once at the end. Values are the first key columns:
// O += P·V reads the score tile's bytes N-major, as decode_wgmma does.
// ---------------------------------------------------------------------------------
#define VNS (DV / 64)                                 // 64-column wgmma blocks of the values
#define RING_BYTES (STAGES * TILE_BYTES)              // one warpgroup's tiles
#define WG_COUNT (NWARPS / 4)                         // warpgroups, each on every WG_COUNT-th tile (2, or 3 on the *-q path)
static_assert(DV <= 256, "decode_wgmma_solo keeps all value columns of 64 rows in one warpgroup");
static_assert(NWARPS % 4 == 0 && WG_COUNT >= 2, "decode_wgmma_solo runs whole warpgroups, at least two");
static_assert(RING_BYTES >= WG_ROWS * STAGE_STRIDE(DV) * 4, "warpgroups ≥ 1 leave their accumulators in their own rings, 0 stages its result in its");

// One tile's online-softmax step for a warpgroup that owns its rows' running max: masks and
// scales s, moves the max, and leaves P (16-bit wgmma A fragments) in pf and its sum in l.
// a0, a1: the factors the accumulator still has to be scaled by.
__device__ __forceinline__ void softmax_step(float *s, int tok0, int end, int qc, float scale_log2, float &m0, float &m1, float &l0,
                                             float &l1, u32 (*pf)[4], float &a0, float &a1) {
    float mx0, mx1, base0, base1;
    tile_maxima(s, tok0, end, qc, scale_log2, mx0, mx1);
    move_max(m0, m1, l0, l1, fmaxf(m0, mx0), fmaxf(m1, mx1), base0, base1, a0, a1);
#pragma unroll
    for (int j = 0; j < TN / 8; j++) {
        const float p0 = exp2f(s[4 * j] - base0), p1 = exp2f(s[4 * j + 1] - base0);
        const float p2 = exp2f(s[4 * j + 2] - base1), p3 = exp2f(s[4 * j + 3] - base1);
        l0 += p0 + p1; l1 += p2 + p3;
        pf[j / 2][(j % 2) * 2 + 0] = pack2(p0, p1);
        pf[j / 2][(j % 2) * 2 + 1] = pack2(p2, p3);
    }
}

extern "C" __global__ void __launch_bounds__(NTHREADS, 1)
decode_wgmma_solo(const u64 *__restrict__ caches, const int *__restrict__ lengths, const int *__restrict__ gtab, int groups,
                  const float *__restrict__ q, int QN, float *__restrict__ out, int ON, float scale_log2, int splits, int chunk,
                  float *__restrict__ part_ml, float *__restrict__ part_acc) {
    extern __shared__ __align__(16) unsigned char smem_raw[];
    unsigned char *smem = smem_raw + ((1024u - (smem_addr(smem_raw) & 1023u)) & 1023u);
    unsigned char *Qs = smem;                      // [DKB][64 rows][128 B], swizzled
    unsigned char *rings = Qs + Q_BYTES;           // [WG_COUNT warpgroups][STAGES][DKB][TN rows][128 B], swizzled
    float *state = (float *)(rings + WG_COUNT * RING_BYTES);  // [WG_COUNT − 1][2][64]: warpgroups ≥ 1's row max and sum at the end

    const int g = blockIdx.x / HBLK, h0 = (blockIdx.x % HBLK) * WG_ROWS, split = blockIdx.y, b = blockIdx.z;
    const int nh = min(WG_ROWS, GROUP_HEADS - h0);
    const int *t = gtab + 5 * g;
    const int key_off = t[0], rope_off = t[1];
    const int len = lengths[b];
    const int start = split * chunk, end = min(len, start + chunk);
    const u64 pidx = (((u64)b * groups + g) * GROUP_HEADS + h0) * (u64)splits + split;
    const int tid = threadIdx.x, wg = tid / 128, ltid = tid % 128, lane = tid % 32;
    const int r0 = (ltid / 32) * 16 + lane / 4, r1 = r0 + 8;  // this thread's two head rows
    const int qc = lane % 4;

    TIMELINE(0);
#ifdef QPREP
    grid_launch_dependents();  // decode_combine_online may be scheduled; it waits for this grid
#endif
    if (start >= end) return empty_split(part_ml, pidx, splits, nh);
    const u16 *rows = (const u16 *)caches[b];
    const int ntiles = (end - start + TN - 1) / TN;
    const int mine = (ntiles - wg + WG_COUNT - 1) / WG_COUNT;  // tiles wg, wg + WG_COUNT, ... of the chunk
    unsigned char *ring = rings + wg * RING_BYTES;
    // Commit groups: tile 0, [the query image,] tiles 1 ..< STAGES − 1.
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < mine) load_key_rows<TN, 128>(ring + s * TILE_BYTES, rows, start + (WG_COUNT * s + wg) * TN, end, key_off, rope_off, ltid);
        cp_async_commit();
#ifdef QPREP
        if (s == 0) { copy_query_image(Qs, q); cp_async_commit(); }
#endif
    }
#ifdef QPREP
    cp_async_wait<STAGES - 2>();  // this thread's copies of tile 0 and of the query image are in
#else
    load_queries(Qs, q + (u64)b * QN + t[3] + (u64)h0 * DK, nh, split);
#endif
    fence_proxy_async();
    __syncthreads();  // every warpgroup wrote part of Qs
    TIMELINE(1);

    float o[VNS][32];
#pragma unroll
    for (int n = 0; n < VNS; n++)
#pragma unroll
        for (int e = 0; e < 32; e++) o[n][e] = 0.0f;
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;  // rows r0, r1 (l: this thread's share)

    float s[TN / 2];
    u32 pf[TN / 16][4];
    float a0, a1;
    for (int i = 0; i < mine; i++) {
        cp_async_wait<STAGES - 2>();
        fence_proxy_async();
        warpgroup_barrier(wg);  // tile i is in for every thread of the warpgroup; all are done with tile i − 1
        {
            const int next = i + STAGES - 1;
            if (next < mine)
                load_key_rows<TN, 128>(ring + (next % STAGES) * TILE_BYTES, rows, start + (WG_COUNT * next + wg) * TN, end, key_off, rope_off,
                                       ltid);
            cp_async_commit();
        }
        const unsigned char *tile = ring + (i % STAGES) * TILE_BYTES;
        wgmma_fence();
        wgmma_scores(s, Qs, tile);
        wgmma_commit();
        wgmma_wait<0>();
        fence_operands<TN / 2>(s);
        softmax_step(s, start + (WG_COUNT * i + wg) * TN, end, qc, scale_log2, m0, m1, l0, l1, pf, a0, a1);
        scale_acc<VNS>(o, a0, a1);
#pragma unroll
        for (int n = 0; n < VNS; n++) fence_operands<32>(o[n]);
        fence_operands<TN / 4>(&pf[0][0]);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < TN / 16; kk++)  // O += P·V
#pragma unroll
            for (int n = 0; n < VNS; n++)
                wgmma_rs_n64_nmajor(o[n], pf[kk], smem_desc(tile + n * (TN * 128) + kk * 2048, V_LBO, 1024, 1));
        wgmma_commit();
        wgmma_wait<0>();
#pragma unroll
        for (int n = 0; n < VNS; n++) fence_operands<32>(o[n]);
        fence_operands<TN / 4>(&pf[0][0]);
    }
    cp_async_wait<0>();
    TIMELINE(2);
    quad_sums(l0, l1);

    // Warpgroups 1 ..< WG_COUNT leave their states in their own rings (thread-major, so that each
    // warpgroup-0 thread reads what its twins wrote) and warpgroup 0 merges: M = max, weights 2^(m − M).
    // A warpgroup without a tile left m = −inf, l = 0, o = 0: weight 0.
    warpgroup_barrier(wg);  // every warp of the warpgroup is done with its ring
    if (wg > 0) {
        float *twin = (float *)(rings + wg * RING_BYTES);
#pragma unroll
        for (int n = 0; n < VNS; n++)
#pragma unroll
            for (int e = 0; e < 32; e++) twin[(n * 32 + e) * 128 + ltid] = o[n][e];
        if (qc == 0) {
            state[(wg - 1) * 2 * WG_ROWS + r0] = m0; state[(wg - 1) * 2 * WG_ROWS + r1] = m1;
            state[((wg - 1) * 2 + 1) * WG_ROWS + r0] = l0; state[((wg - 1) * 2 + 1) * WG_ROWS + r1] = l1;
        }
    }
    __syncthreads();
    if (wg > 0) return;
    float M0 = m0, M1 = m1;  // m0, m1 are finite: warpgroup 0 has a tile
#pragma unroll
    for (int w = 1; w < WG_COUNT; w++) { M0 = fmaxf(M0, state[(w - 1) * 2 * WG_ROWS + r0]); M1 = fmaxf(M1, state[(w - 1) * 2 * WG_ROWS + r1]); }
    const float w0 = exp2f(m0 - M0), w1 = exp2f(m1 - M1);
    float L0 = l0 * w0, L1 = l1 * w1;
    scale_acc<VNS>(o, w0, w1);
#pragma unroll
    for (int w = 1; w < WG_COUNT; w++) {
        const float *twin = (const float *)(rings + w * RING_BYTES);
        const float b0 = exp2f(state[(w - 1) * 2 * WG_ROWS + r0] - M0), b1 = exp2f(state[(w - 1) * 2 * WG_ROWS + r1] - M1);
        L0 += state[((w - 1) * 2 + 1) * WG_ROWS + r0] * b0; L1 += state[((w - 1) * 2 + 1) * WG_ROWS + r1] * b1;
#pragma unroll
        for (int n = 0; n < VNS; n++)
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int e = 4 * j;
                o[n][e] += twin[(n * 32 + e) * 128 + ltid] * b0;
                o[n][e + 1] += twin[(n * 32 + e + 1) * 128 + ltid] * b0;
                o[n][e + 2] += twin[(n * 32 + e + 2) * 128 + ltid] * b1;
                o[n][e + 3] += twin[(n * 32 + e + 3) * 128 + ltid] * b1;
            }
    }
    write_rows<VNS>(o, (float *)rings, 0, 0, r0, r1, nh, qc, M0, M1, L0, L1, true, splits, pidx, out, ON, t[4], h0, b, part_ml,
                    part_acc);  // warpgroup 0's ring is free: its last products were waited for
    TIMELINE(3);
}
#endif  // WG_SOLO
#endif  // FAST_WGMMA

#ifdef FAST_F32
// ---------------------------------------------------------------------------------
// decode_f32: f32 caches on CUDA cores, same split-KV contract as decode_mma.
// Block: HB heads of a group (blockIdx.x = group·HBLOCKS + head block), tiles of
// TN tokens in shared memory; each thread keeps OPT (head, column) accumulators.
// Extra macros: HB (heads per block), TN, NTHREADS.
// ---------------------------------------------------------------------------------
#define HBLOCKS ((GROUP_HEADS + HB - 1) / HB)
#define FCOLS (DK + DV)
#define OPT ((HB * DV + NTHREADS - 1) / NTHREADS)

extern "C" __global__ void __launch_bounds__(NTHREADS)
decode_f32(const u64 *__restrict__ caches, const int *__restrict__ lengths, const int *__restrict__ gtab, int groups,
           const float *__restrict__ q, int QN, float *__restrict__ out, int ON, float scale_log2, int splits, int chunk,
           float *__restrict__ part_ml, float *__restrict__ part_acc) {
    extern __shared__ __align__(16) unsigned char smem[];
    float *Qs = (float *)smem;          // [HB][DK]
    float *tile = Qs + HB * DK;         // [TN][FCOLS + 1]
    float *Ss = tile + TN * (FCOLS + 1); // [HB][TN]
    float *row_m = Ss + HB * TN, *row_l = row_m + HB, *row_alpha = row_l + HB;

    const int g = blockIdx.x / HBLOCKS, hb = blockIdx.x % HBLOCKS, split = blockIdx.y, b = blockIdx.z;
    const int *t = gtab + 5 * g;
    const int len = lengths[b];
    const int start = split * chunk, end = min(len, start + chunk);
    const u64 pidx = (((u64)b * groups + g) * GROUP_HEADS) * (u64)splits + split;
    const int tid = threadIdx.x;
    const int h0 = hb * HB, nh = min(HB, GROUP_HEADS - h0);

    if (start >= end) {
        for (int h = tid; h < nh; h += NTHREADS) {
            part_ml[2 * (pidx + (u64)(h0 + h) * splits)] = NEG_INF;
            part_ml[2 * (pidx + (u64)(h0 + h) * splits) + 1] = 0.0f;
        }
        return;
    }
    const float *rows = (const float *)caches[b];
    const float *qg = q + (u64)b * QN + t[3] + h0 * DK;
    for (int i = tid; i < HB * DK; i += NTHREADS) Qs[i] = (i / DK) < nh ? qg[i] : 0.0f;
    for (int h = tid; h < HB; h += NTHREADS) { row_m[h] = NEG_INF; row_l[h] = 0.0f; }

    float o[OPT];
#pragma unroll
    for (int k = 0; k < OPT; k++) o[k] = 0.0f;

    for (int ts = start; ts < end; ts += TN) {
        __syncthreads();
        for (int i = tid; i < TN * FCOLS; i += NTHREADS) {
            const int r = i / FCOLS, c = i % FCOLS, token = ts + r;
            const int src = c < KEY_W ? t[0] + c : c < DK ? t[1] + c - KEY_W : t[2] + c - DK;
            tile[r * (FCOLS + 1) + c] = token < end ? rows[(u64)token * ROW_W + src] : 0.0f;
        }
        __syncthreads();
        for (int i = tid; i < HB * TN; i += NTHREADS) {
            const int h = i / TN, r = i % TN;
            float acc = 0.0f;
            for (int c = 0; c < DK; c++) acc += Qs[h * DK + c] * tile[r * (FCOLS + 1) + c];
            Ss[i] = ts + r < end ? acc * scale_log2 : NEG_INF;
        }
        __syncthreads();
        for (int h = tid; h < HB; h += NTHREADS) {
            float mx = row_m[h];
            for (int r = 0; r < TN; r++) mx = fmaxf(mx, Ss[h * TN + r]);
            const float alpha = exp2f(row_m[h] - mx);
            float sum = 0.0f;
            for (int r = 0; r < TN; r++) { const float p = exp2f(Ss[h * TN + r] - mx); Ss[h * TN + r] = p; sum += p; }
            row_l[h] = row_l[h] * alpha + sum;
            row_m[h] = mx;
            row_alpha[h] = alpha;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < OPT; k++) {
            const int i = tid + k * NTHREADS;
            if (i >= HB * DV) break;
            const int h = i / DV, c = i % DV;
            float acc = o[k] * row_alpha[h];
            for (int r = 0; r < TN; r++) acc += Ss[h * TN + r] * tile[r * (FCOLS + 1) + DK + c];
            o[k] = acc;
        }
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < OPT; k++) {
        const int i = tid + k * NTHREADS;
        if (i >= HB * DV) break;
        const int h = i / DV, c = i % DV;
        if (h >= nh) continue;
        if (splits == 1) out[(u64)b * ON + t[4] + (h0 + h) * DV + c] = o[k] / row_l[h];
        else part_acc[(pidx + (u64)(h0 + h) * splits) * DV + c] = o[k];
    }
    if (splits > 1)
        for (int h = tid; h < nh; h += NTHREADS) {
            part_ml[2 * (pidx + (u64)(h0 + h) * splits)] = row_m[h];
            part_ml[2 * (pidx + (u64)(h0 + h) * splits) + 1] = row_l[h];
        }
}
#endif  // FAST_F32
