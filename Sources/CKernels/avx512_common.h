// Shared by the AVX-512 loops (attention_avx512.c, attention_small_avx512.c):
// the target attributes and the softmax's exp. Private to CKernels.
#ifndef MLRA_AVX512_COMMON_H
#define MLRA_AVX512_COMMON_H

#include <immintrin.h>

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

#endif
