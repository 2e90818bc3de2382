// Device-side cache contents, identical to the CPU workload's (no headers: NVRTC).
typedef unsigned long long u64;

// Fills `count` cache elements with SeededInit.uniform(nameKey, index) (Swift,
// MLRACore/Support/SeededInit.swift), converted as KVCache.append converts
// (round to nearest even): the GPU cache holds the CPU workload's exact values.
__device__ __forceinline__ u64 split_mix64(u64 x) {
    u64 z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
extern "C" __global__ void fill_uniform(void *dst, u64 count, u64 name_key, int elem) {
    const u64 stride = (u64)gridDim.x * blockDim.x;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        const u64 z = split_mix64(name_key + i * 0x9E3779B97F4A7C15ull);
        const float v = (float)(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
        if (elem == 2) {
            ((float *)dst)[i] = v;
        } else {
            unsigned short h;
            if (elem == 0) asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(v));
            else asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
            ((unsigned short *)dst)[i] = h;
        }
    }
}
