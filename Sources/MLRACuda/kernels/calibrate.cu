// The GPU's roofline, measured (mlra calibrate --device cuda): read-only and copy
// streaming bandwidth over arrays far beyond the L2, the bf16 tensor-core peak
// (mma.sync loop) and the f32 FMA peak. Results feed a sink only when impossible,
// so that the compiler keeps the work. Compiled by NVRTC, no headers.
typedef unsigned int u32;
typedef unsigned long long u64;
struct v4 { u32 x, y, z, w; };

extern "C" __global__ void stream_read(const v4 *__restrict__ a, u64 n, u32 *sink) {
    u32 acc = 0;
    const u64 stride = (u64)gridDim.x * blockDim.x;
    u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    // Four independent 16-byte loads in flight per thread.
    for (; i + 3 * stride < n; i += 4 * stride) {
        v4 p = a[i], q = a[i + stride], r = a[i + 2 * stride], s = a[i + 3 * stride];
        acc ^= p.x ^ p.y ^ p.z ^ p.w ^ q.x ^ q.y ^ q.z ^ q.w ^ r.x ^ r.y ^ r.z ^ r.w ^ s.x ^ s.y ^ s.z ^ s.w;
    }
    for (; i < n; i += stride) { v4 p = a[i]; acc ^= p.x ^ p.y ^ p.z ^ p.w; }
    if (acc == 0x9E3779B9u) sink[0] = acc;
}

extern "C" __global__ void stream_copy(const v4 *__restrict__ a, v4 *__restrict__ b, u64 n) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) b[i] = a[i];
}

// Per warp: `iters` rounds of ACC independent m16n8k16 bf16 mma (4096 FLOP each).
#define ACC 8
extern "C" __global__ void mma_peak(int iters, float *sink) {
    u32 a0 = threadIdx.x, a1 = a0 * 3u, a2 = a0 * 5u, a3 = a0 * 7u, b0 = a0 * 11u, b1 = a0 * 13u;
    float c[ACC][4];
#pragma unroll
    for (int k = 0; k < ACC; k++) c[k][0] = c[k][1] = c[k][2] = c[k][3] = 0.0f;
    for (int it = 0; it < iters; it++) {
#pragma unroll
        for (int k = 0; k < ACC; k++)
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                         : "+f"(c[k][0]), "+f"(c[k][1]), "+f"(c[k][2]), "+f"(c[k][3])
                         : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    }
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < ACC; k++) s += c[k][0] + c[k][1] + c[k][2] + c[k][3];
    if (s == 1.2345f) sink[0] = s;
}

// Per thread: `iters` rounds of 8 independent FMA chains (2 FLOP each).
extern "C" __global__ void fma_peak(int iters, float *sink) {
    float x[8];
    const float m = 1.0f + 1e-7f * threadIdx.x, add = 1e-7f;
#pragma unroll
    for (int k = 0; k < 8; k++) x[k] = (float)(threadIdx.x + k);
    for (int it = 0; it < iters; it++) {
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = fmaf(x[k], m, add);
    }
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; k++) s += x[k];
    if (s == 1.2345f) sink[0] = s;
}
