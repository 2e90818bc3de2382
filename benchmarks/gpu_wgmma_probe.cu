// decode_wgmma alone, against a double reference: a development check that needs only nvcc
// on a Hopper node and a checkout (no Swift). One sequence of L tokens, one group, the shape
// from -D macros as GPUAttention.launchShape passes them (benchmarks/gpu_wgmma_probe.sh).
//   probe L [splits] [main]   prints the worst error, OK/WRONG (relative error 2e-2), and µs per step
// (the kernel and, with splits, decode_combine; caches rotated over copies that together
// exceed the L2, as the harness's cold mode does). Above 65536 tokens it only times; with
// `main` it times the kernel without decode_combine.
// -DWG_SOLO probes decode_wgmma_solo, else decode_wgmma.
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#include "../Sources/MLRACuda/kernels/decode_attention.cu"  // the kernel under test, unchanged

static unsigned short f2bf(float f) { unsigned u; memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return u >> 16; }
static float bf2f(unsigned short h) { unsigned u = (unsigned)h << 16; float f; memcpy(&f, &u, 4); return f; }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d: %s\n", #x, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

int main(int argc, char **argv) {
    const int L = argc > 1 ? atoi(argv[1]) : 1000;
    const int splits = argc > 2 ? atoi(argv[2]) : 1;
    const bool main_only = argc > 3 && strcmp(argv[3], "main") == 0;
    const int H = GROUP_HEADS;
    const bool check = L <= 65536;
    srand(7);
    std::vector<unsigned short> cache((size_t)L * ROW_W);
    for (auto &c : cache) c = f2bf((rand() / (float)RAND_MAX) * 2 - 1);
    std::vector<float> q((size_t)H * DK);
    for (auto &x : q) x = bf2f(f2bf(((rand() / (float)RAND_MAX) * 2 - 1) * 0.5f));
    const float scale = 1.0f / sqrtf((float)DK);
    // reference
    std::vector<double> ref((size_t)H * DV);
    double refmax = 0;
    for (int h = 0; h < (check ? H : 0); h++) {
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
    // Copies of the cache beyond the L2 (50 MB), rotated per step.
    const size_t cache_bytes = cache.size() * 2;
    const int sets = (int)std::max<size_t>(1, (size_t)(200u << 20) / cache_bytes + 1);
    unsigned short *dcache; float *dq, *dout, *dml, *dacc; int *dlen, *dtab; unsigned long long *dptr;
    CK(cudaMalloc(&dcache, cache_bytes * sets));
    for (int i = 0; i < sets; i++) CK(cudaMemcpy(dcache + i * cache.size(), cache.data(), cache_bytes, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dq, q.size() * 4)); CK(cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dout, (size_t)H * DV * 4)); CK(cudaMemset(dout, 0xff, (size_t)H * DV * 4));
    CK(cudaMalloc(&dml, (size_t)H * splits * 8)); CK(cudaMalloc(&dacc, (size_t)H * splits * DV * 4));
    int tab[5] = {0, KEY_W, 0, 0, 0};
    CK(cudaMalloc(&dtab, 20)); CK(cudaMemcpy(dtab, tab, 20, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dlen, 4)); CK(cudaMemcpy(dlen, &L, 4, cudaMemcpyHostToDevice));
    std::vector<unsigned long long> ptrs(sets);
    for (int i = 0; i < sets; i++) ptrs[i] = (unsigned long long)(dcache + i * cache.size());
    CK(cudaMalloc(&dptr, 8 * sets)); CK(cudaMemcpy(dptr, ptrs.data(), 8 * sets, cudaMemcpyHostToDevice));
    const int pair = 2 * TN;  // a split covers whole pairs of tiles, as GPUAttention plans it
    const int tiles = (L + pair - 1) / pair;
    const int chunk = ((tiles + splits - 1) / splits) * pair;
    const int nsplit = (L + chunk - 1) / chunk;
#ifdef WG_SOLO
    const int shared = 1024 + Q_BYTES + 2 * RING_BYTES + 2 * 4 * WG_ROWS;
#define KERNEL decode_wgmma_solo
#else
    const int shared = 1024 + Q_BYTES + STAGES * PAIR_BYTES + 2 * P_BYTES + 4 * 4 * WG_ROWS;
#define KERNEL decode_wgmma
#endif
    CK(cudaFuncSetAttribute(KERNEL, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    const float log2e = 1.4426950408889634f;
    auto step = [&](int set) {
        KERNEL<<<dim3(HBLK, nsplit, 1), 256, shared>>>(dptr + set, dlen, dtab, 1, dq, H * DK, dout, H * DV, scale * log2e, nsplit, chunk, dml, dacc);
        if (nsplit > 1 && !main_only) decode_combine<<<dim3(H * ((DV + 31) / 32), 1, 1), 256>>>(dml, dacc, dtab, 1, nsplit, dout, H * DV);
    };
    step(0);
    if (nsplit > 1 && main_only)
        decode_combine<<<dim3(H * ((DV + 31) / 32), 1, 1), 256>>>(dml, dacc, dtab, 1, nsplit, dout, H * DV);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    std::vector<float> out((size_t)H * DV);
    CK(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    double err = 0; int bad_h = -1, bad_c = -1;
    for (int i = 0; i < H * DV; i++) { double e = fabs(out[i] - ref[i]); if (!(e <= err)) { err = e; bad_h = i / DV; bad_c = i % DV; } }
    // timing at this length: median of 5 runs of 20 steps
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    for (int i = 0; i < 3; i++) step(i % sets);
    std::vector<float> runs;
    for (int r = 0; r < 5; r++) {
        cudaEventRecord(a);
        for (int it = 0; it < 20; it++) step(it % sets);
        cudaEventRecord(b); cudaEventSynchronize(b);
        float ms; cudaEventElapsedTime(&ms, a, b);
        runs.push_back(ms);
    }
    std::sort(runs.begin(), runs.end());
    const float ms = runs[2];
    CK(cudaGetLastError());
    const double bytes = (double)L * DK * 2;
#ifdef PROBE_TIMELINE
    {   // one more step, stamped: where a block's time goes
        step(0);
        CK(cudaDeviceSynchronize());
        static unsigned long long tl[1024][4];
        CK(cudaMemcpyFromSymbol(tl, probe_timeline, sizeof(tl)));
        unsigned long long first = ~0ull, last = 0;
        std::vector<double> entry, pro, loop, epi;
        for (int i = 0; i < nsplit; i++) first = std::min(first, tl[i][0]);
        for (int i = 0; i < nsplit; i++) {
            last = std::max(last, tl[i][3]);
            entry.push_back((tl[i][0] - first) * 1e-3); pro.push_back((tl[i][1] - tl[i][0]) * 1e-3);
            loop.push_back((tl[i][2] - tl[i][1]) * 1e-3); epi.push_back((tl[i][3] - tl[i][2]) * 1e-3);
        }
        auto med = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
        auto mx = [](std::vector<double> v) { return *std::max_element(v.begin(), v.end()); };
        printf("timeline L=%d: entry spread med %.2f max %.2f us; prologue med %.2f max %.2f; loop med %.2f max %.2f; "
               "epilogue med %.2f max %.2f; first entry to last exit %.2f us\n", L, med(entry), mx(entry), med(pro), mx(pro),
               med(loop), mx(loop), med(epi), mx(epi), (last - first) * 1e-3);
    }
#endif
    if (check)
        printf("L=%d splits=%d max|err|=%.3g (rel %.3g of max|ref| %.3g) worst h=%d c=%d out=%g ref=%g  %s  step %.1f us\n", L, nsplit, err,
               err / refmax, refmax, bad_h, bad_c, bad_h >= 0 ? out[bad_h * DV + bad_c] : 0.0, bad_h >= 0 ? ref[bad_h * DV + bad_c] : 0.0,
               err / refmax < 2e-2 ? "OK" : "WRONG", ms * 1000 / 20);
    else
        printf("L=%d splits=%d sets=%d  %s %.1f us  %.0f GB/s\n", L, nsplit, sets, main_only ? "main" : "step", ms * 1000 / 20,
               bytes / (ms * 1e-3 / 20) / 1e9);
    return 0;
}
