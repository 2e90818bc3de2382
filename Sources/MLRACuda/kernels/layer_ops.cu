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

// f32 → bf16 (elem 0) or f16 (elem 1; CCuda.h mlra_elem) bits, rounded to nearest even as
// on the CPU.
__device__ __forceinline__ unsigned short to_16bit(float v, int elem) {
    unsigned short h;
    if (elem == 0) asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
    else asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}

// KVCache.append: row blockIdx.x of `rows` ([R, width] f32) stored at dst[row] in the cache's
// dtype (elem: 0 bf16, 1 f16, 2 f32).
extern "C" __global__ void append_rows(const float *rows, int width, const u64 *dst, int elem) {
    const float *r = rows + (u64)blockIdx.x * width;
    void *d = (void *)dst[blockIdx.x];
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        if (elem == 2) ((float *)d)[c] = r[c];
        else ((unsigned short *)d)[c] = to_16bit(r[c], elem);
    }
}

// `count` f32 values → bf16 (elem 0) or f16 (elem 1): the operands of the layer's 16-bit
// tensor-core GEMMs (weights once, when the shard is built; activations before each product).
extern "C" __global__ void to_half(const float *src, unsigned short *dst, u64 count, int elem) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) dst[i] = to_16bit(src[i], elem);
}

// The rest of a decoder (DecoderModel): grid-stride loops over `count` values.

// x[i] += y[i]: the residual stream (CPUBackend.add).
extern "C" __global__ void add_values(float *x, const float *y, u64 count) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) x[i] += y[i];
}

// SwiGLU (CPUBackend.swiGLU): gate[i] <- gate[i] / (1 + e^-gate[i]) * up[i].
extern "C" __global__ void swiglu_values(float *gate, const float *up, u64 count) {
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (u64)gridDim.x * blockDim.x) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// The embedding lookup (CPUBackend.embed): row blockIdx.x of out <- row ids[blockIdx.x] of
// table [V, width], held as f32 (elem 2) or, when the backend multiplies in 16 bits, as
// bf16 (elem 0) or f16 (elem 1).
extern "C" __global__ void gather_rows(const void *table, const int *ids, int width, int elem, float *out) {
    const u64 first = (u64)ids[blockIdx.x] * width;
    float *dst = out + (u64)blockIdx.x * width;
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        if (elem == 2) {
            dst[c] = ((const float *)table)[first + c];
        } else {
            const unsigned short h = ((const unsigned short *)table)[first + c];
            float v;
            if (elem == 0) v = __uint_as_float((unsigned)h << 16);
            else asm("cvt.f32.f16 %0, %1;" : "=f"(v) : "h"(h));
            dst[c] = v;
        }
    }
}
