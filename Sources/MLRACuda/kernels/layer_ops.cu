// The element-wise steps of a sharded decode layer on the GPU (CUDABackend), each the
// device form of its CPU operation in MLRACore (CPUBackend). f32 activations, row-major;
// a "strided family" is block j of row i at offset + i·ld + j·step. No headers (NVRTC).
typedef unsigned long long u64;

// RMSNorm (Sources/MLRACore/Support/LinearAlgebra.swift rmsNorm): w ⊙ x · scale / sqrt(mean(x²) + 1e-6)
// over `count` columns at `offset` of row blockIdx.x, in place. One block per row.
extern "C" __global__ void rms_norm_rows(float *x, int stride, int offset, int count, const float *weight, float scale) {
    float *row = x + (u64)blockIdx.x * stride + offset;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < count; c += blockDim.x) ss += row[c] * row[c];
    __shared__ float partial[32];
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        float v = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    const float inv = scale / sqrtf(partial[0] / (float)count + 1e-6f);
    for (int c = threadIdx.x; c < count; c += blockDim.x) row[c] = row[c] * inv * weight[c];
}

// Half-split RoPE (LinearAlgebra.swift RoPE.apply) on block blockIdx.y of row blockIdx.x at
// positions[row]; frequencies and angles in double, as on the CPU.
extern "C" __global__ void rope_rows(float *x, int offset, int ld, int step, int dim, const int *positions) {
    float *v = x + offset + (u64)blockIdx.x * ld + (u64)blockIdx.y * step;
    const int half = dim / 2;
    const double position = (double)positions[blockIdx.x];
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        const double theta = position * exp((-2.0 * j / dim) * log(10000.0));
        const float c = (float)cos(theta), s = (float)sin(theta);
        const float a = v[j], b = v[j + half];
        v[j] = a * c - b * s;
        v[j + half] = a * s + b * c;
    }
}

// Copies block blockIdx.y (`width` columns) of row blockIdx.x between two strided families.
extern "C" __global__ void copy_blocks(const float *src, int s_offset, int s_ld, int s_step,
                                       float *dst, int d_offset, int d_ld, int d_step, int width) {
    const float *s = src + s_offset + (u64)blockIdx.x * s_ld + (u64)blockIdx.y * s_step;
    float *d = dst + d_offset + (u64)blockIdx.x * d_ld + (u64)blockIdx.y * d_step;
    for (int c = threadIdx.x; c < width; c += blockDim.x) d[c] = s[c];
}

// KVCache.append: row blockIdx.x of `rows` ([R, width] f32) stored at dst[row] in the cache's
// dtype (elem: 0 bf16, 1 f16, 2 f32; CCuda.h mlra_elem), rounded to nearest even as on the CPU.
extern "C" __global__ void append_rows(const float *rows, int width, const u64 *dst, int elem) {
    const float *r = rows + (u64)blockIdx.x * width;
    void *d = (void *)dst[blockIdx.x];
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        const float v = r[c];
        if (elem == 2) {
            ((float *)d)[c] = v;
        } else {
            unsigned short h;
            if (elem == 0) asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
            else asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
            ((unsigned short *)d)[c] = h;
        }
    }
}

// f32 → bf16 (elem 0) or f16 (elem 1), round to nearest even: a 16-bit run's weight
// matrices, converted once when the shard is built.
extern "C" __global__ void to_half(const float *src, unsigned short *dst, u64 count, int elem) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        unsigned short h;
        if (elem == 0) asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(src[i]));
        else asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(src[i]));
        dst[i] = h;
    }
}

// The decode step's products for a few rows (m ≤ GEMV_MAX_ROWS): memory-bound matrix-vector
// work, where a GEMM library's tiles are mostly idle. Weight j of family member
// blockIdx.y: elem 0 bf16, 1 f16, 2 f32, converted in registers and multiplied by the f32
// activations with f32 accumulation. y = alpha·(x·op(W)) (+ y when accumulate).
#define GEMV_MAX_ROWS 8

__device__ __forceinline__ float weight_at(const void *w, u64 i, int elem) {
    if (elem == 2) return ((const float *)w)[i];
    const unsigned short h = ((const unsigned short *)w)[i];
    if (elem == 0) return __uint_as_float((unsigned)h << 16);
    float f;
    asm("{ .reg .f16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h));
    return f;
}

// W stored [n, k] (row j is output j's weights, ldw apart): one warp per output, lanes
// along k, 16-byte loads of W where its rows are 16-byte aligned.
extern "C" __global__ void gemv_nt(const void *w, int elem, int ldw, long long w_step,
                                   const float *x, int ldx, long long x_step, float *y, int ldy, long long y_step,
                                   int m, int n, int k, float alpha, int accumulate) {
    const int j = (int)((blockIdx.x * (u64)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (j >= n) return;
    const int esize = elem == 2 ? 4 : 2;
    const char *wb = (const char *)w + (u64)blockIdx.y * w_step * esize;
    x += blockIdx.y * x_step;
    y += blockIdx.y * y_step;
    const char *row = wb + (u64)j * ldw * esize;
    float acc[GEMV_MAX_ROWS];
    for (int r = 0; r < GEMV_MAX_ROWS; r++) acc[r] = 0.0f;
    const int per = 16 / esize;   // elements per 16-byte load
    int c0 = 0;
    if (((u64)row & 15) == 0 && k >= per) {
        const int kv = k / per * per;
#pragma unroll 2
        for (int c = lane * per; c < kv; c += 32 * per) {
            const uint4 v = *(const uint4 *)(row + (u64)c * esize);
            float f[8];
            if (elem == 2) {
                f[0] = __uint_as_float(v.x); f[1] = __uint_as_float(v.y); f[2] = __uint_as_float(v.z); f[3] = __uint_as_float(v.w);
            } else {
                const unsigned short *h = (const unsigned short *)&v;
                for (int e = 0; e < 8; e++) f[e] = weight_at(h, e, elem);
            }
            for (int r = 0; r < GEMV_MAX_ROWS; r++) {
                if (r < m) {
                    const float *xr = x + (u64)r * ldx + c;
                    float s = 0.0f;
                    for (int e = 0; e < per; e++) s += f[e] * xr[e];
                    acc[r] += s;
                }
            }
        }
        c0 = kv;
    }
    for (int c = c0 + lane; c < k; c += 32) {
        const float f = weight_at(row, c, elem);
        for (int r = 0; r < GEMV_MAX_ROWS; r++) if (r < m) acc[r] += f * x[(u64)r * ldx + c];
    }
    for (int r = 0; r < GEMV_MAX_ROWS; r++) {
        float s = acc[r];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0 && r < m) {
            float *out = y + (u64)r * ldy + j;
            *out = alpha * s + (accumulate ? *out : 0.0f);
        }
    }
}

// W stored [k, n] (row kk holds every output's weight for input kk, ldw apart): one thread
// per output, threads along n (coalesced rows of W), a loop over k.
extern "C" __global__ void gemv_nn(const void *w, int elem, int ldw, long long w_step,
                                   const float *x, int ldx, long long x_step, float *y, int ldy, long long y_step,
                                   int m, int n, int k, float alpha, int accumulate) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n) return;
    const int esize = elem == 2 ? 4 : 2;
    const char *wb = (const char *)w + (u64)blockIdx.y * w_step * esize;
    x += blockIdx.y * x_step;
    y += blockIdx.y * y_step;
    float acc[GEMV_MAX_ROWS];
    for (int r = 0; r < GEMV_MAX_ROWS; r++) acc[r] = 0.0f;
    for (int kk = 0; kk < k; kk++) {
        const float f = weight_at(wb, (u64)kk * ldw + j, elem);
        for (int r = 0; r < GEMV_MAX_ROWS; r++) if (r < m) acc[r] += f * x[(u64)r * ldx + kk];
    }
    for (int r = 0; r < m && r < GEMV_MAX_ROWS; r++) {
        float *out = y + (u64)r * ldy + j;
        *out = alpha * acc[r] + (accumulate ? *out : 0.0f);
    }
}
