// decode_wgmma alone, against a double reference: a development check that needs only nvcc
// on a Hopper node and a checkout (no Swift). One sequence of L tokens, one group, the shape
// from -D macros as GPUAttention.launchShape passes them (benchmarks/gpu_wgmma_probe.sh).
//   probe L [splits]   prints the worst error, OK/WRONG (relative error 2e-2), and µs per launch
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <vector>
#include <cuda_runtime.h>
#include "../Sources/MLRACuda/kernels/decode_attention.cu"  // the kernel under test, unchanged

static unsigned short f2bf(float f) { unsigned u; memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return u >> 16; }
static float bf2f(unsigned short h) { unsigned u = (unsigned)h << 16; float f; memcpy(&f, &u, 4); return f; }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d: %s\n", #x, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

int main(int argc, char **argv) {
    const int L = argc > 1 ? atoi(argv[1]) : 1000;
    const int splits = argc > 2 ? atoi(argv[2]) : 1;
    const int H = GROUP_HEADS;
    srand(7);
    std::vector<unsigned short> cache((size_t)L * ROW_W);
    for (auto &c : cache) c = f2bf((rand() / (float)RAND_MAX) * 2 - 1);
    std::vector<float> q((size_t)H * DK);
    for (auto &x : q) x = bf2f(f2bf(((rand() / (float)RAND_MAX) * 2 - 1) * 0.5f));
    const float scale = 1.0f / sqrtf((float)DK);
    // reference
    std::vector<double> ref((size_t)H * DV);
    double refmax = 0;
    for (int h = 0; h < H; h++) {
        std::vector<double> s(L);
        double m = -1e300;
        for (int j = 0; j < L; j++) {
            double a = 0;
            for (int c = 0; c < KEY_W; c++) a += q[h * DK + c] * bf2f(cache[(size_t)j * ROW_W + c]);
            for (int c = 0; c < ROPE_W; c++) a += q[h * DK + KEY_W + c] * bf2f(cache[(size_t)j * ROW_W + KEY_W + c]);
            s[j] = a * scale; m = fmax(m, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < L; j++) { s[j] = exp(s[j] - m); sum += s[j]; }
        for (int c = 0; c < DV; c++) {
            double a = 0;
            for (int j = 0; j < L; j++) a += s[j] * bf2f(cache[(size_t)j * ROW_W + c]);
            ref[h * DV + c] = a / sum; refmax = fmax(refmax, fabs(ref[h * DV + c]));
        }
    }
    unsigned short *dcache; float *dq, *dout, *dml, *dacc; int *dlen, *dtab; unsigned long long *dptr;
    CK(cudaMalloc(&dcache, cache.size() * 2)); CK(cudaMemcpy(dcache, cache.data(), cache.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dq, q.size() * 4)); CK(cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dout, (size_t)H * DV * 4)); CK(cudaMemset(dout, 0xff, (size_t)H * DV * 4));
    CK(cudaMalloc(&dml, (size_t)H * splits * 8)); CK(cudaMalloc(&dacc, (size_t)H * splits * DV * 4));
    int tab[5] = {0, KEY_W, 0, 0, 0};
    CK(cudaMalloc(&dtab, 20)); CK(cudaMemcpy(dtab, tab, 20, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dlen, 4)); CK(cudaMemcpy(dlen, &L, 4, cudaMemcpyHostToDevice));
    unsigned long long p = (unsigned long long)dcache;
    CK(cudaMalloc(&dptr, 8)); CK(cudaMemcpy(dptr, &p, 8, cudaMemcpyHostToDevice));
    const int pair = 2 * TN;
    const int tiles = (L + pair - 1) / pair;
    const int chunk = ((tiles + splits - 1) / splits) * pair;
    const int nsplit = (L + chunk - 1) / chunk;
    const int shared = 1024 + Q_BYTES + STAGES * PAIR_BYTES + 2 * P_BYTES + 4 * 4 * WG_ROWS;
    CK(cudaFuncSetAttribute(decode_wgmma, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    const float log2e = 1.4426950408889634f;
    decode_wgmma<<<dim3(HBLK, nsplit, 1), 256, shared>>>(dptr, dlen, dtab, 1, dq, H * DK, dout, H * DV, scale * log2e, nsplit, chunk, dml, dacc);
    CK(cudaGetLastError());
    if (nsplit > 1) decode_combine<<<dim3(H * ((DV + 31) / 32), 1, 1), 256>>>(dml, dacc, dtab, 1, nsplit, dout, H * DV);
    CK(cudaDeviceSynchronize());
    std::vector<float> out((size_t)H * DV);
    CK(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    double err = 0; int bad_h = -1, bad_c = -1;
    for (int i = 0; i < H * DV; i++) { double e = fabs(out[i] - ref[i]); if (!(e <= err)) { err = e; bad_h = i / DV; bad_c = i % DV; } }
    // timing at this length
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    cudaEventRecord(a);
    for (int it = 0; it < 20; it++)
        decode_wgmma<<<dim3(HBLK, nsplit, 1), 256, shared>>>(dptr, dlen, dtab, 1, dq, H * DK, dout, H * DV, scale * log2e, nsplit, chunk, dml, dacc);
    cudaEventRecord(b); cudaEventSynchronize(b);
    float ms; cudaEventElapsedTime(&ms, a, b);
    printf("L=%d splits=%d max|err|=%.3g (rel %.3g of max|ref| %.3g) worst h=%d c=%d out=%g ref=%g  %s  main %.1f us\n", L, nsplit, err,
           err / refmax, refmax, bad_h, bad_c, bad_h >= 0 ? out[bad_h * DV + bad_c] : 0.0, bad_h >= 0 ? ref[bad_h * DV + bad_c] : 0.0,
           err / refmax < 2e-2 ? "OK" : "WRONG", ms * 1000 / 20);
    return 0;
}
