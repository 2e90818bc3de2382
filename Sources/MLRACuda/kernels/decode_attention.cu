// Absorbed decode attention on the GPU (the CUDA side of MLRACore's AttentionKernel).
// Compiled at run time by NVRTC, once per shape: the host passes the shape as -D macros,
// so every loop bound below is a compile-time constant. No headers (NVRTC has none of
// CUDA's): 16-bit floats are carried as unsigned shorts and converted with PTX.
//
// Shapes (one kernel group: GROUP_HEADS query heads that read the same cached columns):
//   L   tokens of a sequence's cache, rows of ROW_W elements (ELEM: 0 bf16, 1 f16, 2 f32)
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
// Splits past a sequence's end left m = −inf, l = 0 and weigh nothing.
// Block (head · column block, group, sequence), 256 threads: lane = one of 32 columns,
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
        for (int s = warp; s < splits; s += 8) acc += weight[s] * part_acc[(base + s) * DV + c];
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
// HEADS: heads per block (≤ GROUP_HEADS; a group's heads take HBLK blocks, so that the
// accumulators fit in registers); MT: 16-row tiles, a power of two ≥ HEADS/16.
#define HBLK ((GROUP_HEADS + HEADS - 1) / HEADS)
#define MROWS (MT * 16)
#define NTHREADS (NWARPS * 32)
#define SCOLS (DK + (VAL_IS_KEY ? 0 : DV))  // columns of a row kept in shared memory
#define SROW (SCOLS + 8)                    // padded by 16 bytes against bank conflicts
#define QROW (DK + 8)
#define SSTRIDE (TN + 4)
#define PSTRIDE (TN + 8)
#define VCOL0 (VAL_IS_KEY ? 0 : DK)
#define S_WN (NWARPS / S_WM)
#define S_MT (MT / S_WM)           // m-tiles per warp, score phase
#define S_NT (TN / 8 / S_WN)       // n-tiles (8 tokens) per warp, score phase
#define O_WN (NWARPS / O_WM)
#define O_MT (MT / O_WM)           // m-tiles per warp, value phase
#define O_NT (DV / 8 / O_WN)       // n-tiles (8 columns) per warp, value phase
#define TPR (NTHREADS / MROWS)     // threads per head row in the softmax

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
__device__ __forceinline__ void mma16816(float *c, u32 a0, u32 a1, u32 a2, u32 a3, u32 b0, u32 b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." MMA_TYPE "." MMA_TYPE ".f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
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

    if (start >= end) {  // past this sequence's end: a partial state that weighs nothing
        for (int h = tid; h < nh; h += NTHREADS) {
            part_ml[2 * (pidx + (u64)h * splits)] = NEG_INF;
            part_ml[2 * (pidx + (u64)h * splits) + 1] = 0.0f;
        }
        return;
    }
    const u16 *rows = (const u16 *)caches[b];
    const int ntiles = (end - start + TN - 1) / TN;

    // Prefetch the first STAGES-1 tiles, then queries (converted to 16 bits) while they fly.
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < ntiles) load_tile(tiles + s * TN * SROW, rows, start + s * TN, end, key_off, rope_off, val_off);
        cp_async_commit();
    }
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
                for (int i = 0; i < S_MT; i++) mma16816(sacc[i][j], a[i][0], a[i][1], a[i][2], a[i][3], b0, b1);
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
                    mma16816(o[i][j], a[i][0], a[i][1], a[i][2], a[i][3], b0, b1);
                    mma16816(o[i][j + 1], a[i][0], a[i][1], a[i][2], a[i][3], b2, b3);
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
// decode layout: warp w owns head tile w mod MT and every WSPLIT-th slice of WT tokens
// of each tile, with its own online softmax (max, sum, accumulator) in registers; the
// scores never leave the registers (the score accumulator is the A operand of P·V), so
// a tile costs one barrier, for the shared stage. The WSPLIT states of a head tile are
// merged once per block at the end. Queries are loaded into registers once.
// Extra macros: HEADS, MT, TN, STAGES, NWARPS (= MT·WSPLIT), VAL_IS_KEY.
// ---------------------------------------------------------------------------------
#define WSPLIT (NWARPS / MT)
#define WT (TN / WSPLIT)             // tokens of a tile per warp (a multiple of 16)
#define NTHREADS (NWARPS * 32)
#define SCOLS (DK + (VAL_IS_KEY ? 0 : DV))
#define SROW (SCOLS + 8)
#define VCOL0 (VAL_IS_KEY ? 0 : DK)
#define HBLK ((GROUP_HEADS + HEADS - 1) / HEADS)
#define MROWS (MT * 16)
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

__device__ __forceinline__ void load_tile(u16 *tile, const u16 *rows, int start, int end, int key_off, int rope_off,
                                          int val_off) {
    constexpr int CHUNKS = SCOLS / 8;
    for (int i = threadIdx.x; i < TN * CHUNKS; i += NTHREADS) {
        const int r = i / CHUNKS, c = (i % CHUNKS) * 8;
        const int token = start + r;
        const bool valid = token < end;
        const int col = c < KEY_W ? key_off + c : c < DK ? rope_off + (c - KEY_W) : val_off + (c - DK);
        cp_async16(tile + r * SROW + c, rows + (u64)(valid ? token : start) * ROW_W + col, valid);
    }
}

#ifndef MIN_BLOCKS
#define MIN_BLOCKS 1
#endif
extern "C" __global__ void __launch_bounds__(NTHREADS, MIN_BLOCKS)
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

    if (start >= end) {
        for (int h = tid; h < nh; h += NTHREADS) {
            part_ml[2 * (pidx + (u64)h * splits)] = NEG_INF;
            part_ml[2 * (pidx + (u64)h * splits) + 1] = 0.0f;
        }
        return;
    }
    const u16 *rows = (const u16 *)caches[b];
    const int ntiles = (end - start + TN - 1) / TN;
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < ntiles) load_tile(tiles + s * TN * SROW, rows, start + s * TN, end, key_off, rope_off, val_off);
        cp_async_commit();
    }

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
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1); l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1); l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
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
