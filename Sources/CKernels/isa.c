#include "CKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

int mlra_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

int mlra_cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static volatile float fma_sink;

// 12 independent chains: enough to cover the FMA latency (4 cycles) on 2 pipes.
__attribute__((target("avx512f")))
static double fma512(long iterations) {
    __m512 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(1.0f + 0.01f * i);
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (long k = 0; k < iterations; k++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    fma_sink = _mm512_reduce_add_ps(s);
    return (double)iterations * 12 * 16 * 2;
}

__attribute__((target("avx2,fma")))
static double fma256(long iterations) {
    __m256 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(1.0f + 0.01f * i);
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (long k = 0; k < iterations; k++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    }
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    fma_sink = out[0];
    return (double)iterations * 12 * 8 * 2;
}

double mlra_fma_loop(mlra_isa isa, long iterations) {
    return isa == MLRA_ISA_AVX512 ? fma512(iterations) : fma256(iterations);
}

#else
int mlra_cpu_has_avx512(void) { return 0; }
int mlra_cpu_has_avx2(void) { return 0; }
double mlra_fma_loop(mlra_isa isa, long iterations) { (void)isa; (void)iterations; return 0; }
#endif
