// decode_wgmma / decode_wgmma_solo alone, against a double reference: a development check that
// needs only nvcc on a Hopper node and a checkout (no Swift). One sequence of L tokens, one
// group, the shape from -D macros as GPUAttention.launchShape passes them
// (benchmarks/gpu_wgmma_probe.sh).
//   probe NAME L [splits] [main] [pdl]
// With L ≤ 65536 it checks the output against a double reference on the host and prints
//   CHECK NAME L splits rel_err OK|WRONG   (OK: max|out − ref| ≤ 2e-2 · max|ref|, bf16 caches)
// and always the time of one step (the kernel, decode_qprep before it with -DQPREP, and with
// splits decode_combine; `main`: the split kernel alone), from CUDA-graph replays of 20 steps
// over cache copies that together exceed the L2 (the harness's cold mode):
//   TIME NAME L splits us GB/s        (GB/s: the cache bytes the step must read, L·(KEY_W+ROPE_W)·2, over the time)
// `pdl`: the split kernel and decode_combine are launched as programmatic dependents (as the
// harness's wgmma-q / wgmma-solo-q paths do); without it, plain stream order.
// -DWG_SOLO probes decode_wgmma_solo (NWARPS/4 warpgroups), else decode_wgmma; -DQPREP the
// query-image variant (decode_qprep before it, decode_combine_online after it, as the -q paths).
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#include "../Sources/MLRACuda/kernels/decode_attention.cu"  // the kernels under test, unchanged

static unsigned short f2bf(float f) { unsigned u; memcpy(&u, &f, 4); u += 0x7fff + ((u >> 16) & 1); return u >> 16; }
static float bf2f(unsigned short h) { unsigned u = (unsigned)h << 16; float f; memcpy(&f, &u, 4); return f; }
#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA %s at %d: %s\n", #x, __LINE__, cudaGetErrorString(e)); exit(1);} } while (0)

// Timing-only caches (L > 65536): bf16 values in [−1, 1) from a hash, written on the device.
__global__ void probe_fill(unsigned short *c, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned x = (unsigned)(i * 2654435761u) ^ (unsigned)(i >> 32);
        x ^= x >> 15; x *= 2246822519u; x ^= x >> 13;
        const float f = (x & 0xffff) / 32768.0f - 1.0f;
        c[i] = (unsigned short)(__float_as_uint(f) >> 16);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) { printf("usage: probe NAME L [splits] [main] [pdl]\n"); return 2; }
    const char *name = argv[1];
    const int L = atoi(argv[2]);
    const int splits = argc > 3 ? atoi(argv[3]) : 1;
    bool main_only = false, pdl = false;
    for (int i = 4; i < argc; i++) { main_only |= strcmp(argv[i], "main") == 0; pdl |= strcmp(argv[i], "pdl") == 0; }
    const int H = GROUP_HEADS;
    const bool check = L <= 65536;
    srand(7);
    const size_t elems = (size_t)L * ROW_W;
    std::vector<unsigned short> cache(check ? elems : 0);
    for (auto &c : cache) c = f2bf((rand() / (float)RAND_MAX) * 2 - 1);
    std::vector<float> q((size_t)H * DK);
    for (auto &x : q) x = bf2f(f2bf(((rand() / (float)RAND_MAX) * 2 - 1) * 0.5f));
    const float scale = 1.0f / sqrtf((float)DK);
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
    const size_t cache_bytes = elems * 2;
    const int sets = (int)std::max<size_t>(1, (size_t)(200u << 20) / cache_bytes + 1);
    unsigned short *dcache; float *dq, *dout, *dml, *dacc; int *dlen, *dtab; unsigned long long *dptr;
    CK(cudaMalloc(&dcache, cache_bytes * sets));
    for (int i = 0; i < sets; i++) {
        if (check) CK(cudaMemcpy(dcache + i * elems, cache.data(), cache_bytes, cudaMemcpyHostToDevice));
        else probe_fill<<<1024, 256>>>(dcache + i * elems, elems);
    }
    CK(cudaMalloc(&dq, q.size() * 4)); CK(cudaMemcpy(dq, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dout, (size_t)H * DV * 4)); CK(cudaMemset(dout, 0xff, (size_t)H * DV * 4));
    CK(cudaMalloc(&dml, (size_t)H * splits * 8)); CK(cudaMalloc(&dacc, (size_t)H * splits * DV * 4));
    int tab[5] = {0, KEY_W, 0, 0, 0};
    CK(cudaMalloc(&dtab, 20)); CK(cudaMemcpy(dtab, tab, 20, cudaMemcpyHostToDevice));
    CK(cudaMalloc(&dlen, 4)); CK(cudaMemcpy(dlen, &L, 4, cudaMemcpyHostToDevice));
    std::vector<unsigned long long> ptrs(sets);
    for (int i = 0; i < sets; i++) ptrs[i] = (unsigned long long)(dcache + i * elems);
    CK(cudaMalloc(&dptr, 8 * sets)); CK(cudaMemcpy(dptr, ptrs.data(), 8 * sets, cudaMemcpyHostToDevice));
#ifdef WG_SOLO
    const int per_iter = WG_COUNT * TN;  // a split covers whole iterations, as GPUAttention plans it
    const int shared = 1024 + Q_BYTES + WG_COUNT * RING_BYTES + (WG_COUNT - 1) * 2 * 4 * WG_ROWS;
#define KERNEL decode_wgmma_solo
#else
    const int per_iter = 2 * TN;
    const int shared = 1024 + Q_BYTES + STAGES * PAIR_BYTES + 2 * P_BYTES + 4 * 4 * WG_ROWS;
#define KERNEL decode_wgmma
#endif
    const int tiles = (L + per_iter - 1) / per_iter;
    const int chunk = ((tiles + splits - 1) / splits) * per_iter;
    const int nsplit = (L + chunk - 1) / chunk;
    CK(cudaFuncSetAttribute(KERNEL, cudaFuncAttributeMaxDynamicSharedMemorySize, shared));
    const float *qarg = dq;
#ifdef QPREP
    unsigned char *dimg;
    CK(cudaMalloc(&dimg, (size_t)HBLK * Q_BYTES));
    qarg = (const float *)dimg;
#endif
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    const float log2e = 1.4426950408889634f, scale_log2 = scale * log2e;
    const int QN = H * DK, ON = H * DV, one = 1;
    // Launches with or without the programmatic-serialization attribute.
    auto launch = [&](const void *fn, dim3 grid, int threads, int smem, bool dependent, void **args) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = grid; cfg.blockDim = dim3(threads); cfg.dynamicSmemBytes = smem; cfg.stream = st;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr; cfg.numAttrs = dependent ? 1 : 0;
        CK(cudaLaunchKernelExC(&cfg, fn, args));
    };
    auto combine = [&](bool dependent) {
        int ns = nsplit;
        void *args[] = {&dml, &dacc, &dtab, (void *)&one, &ns, &dout, (void *)&ON};
#ifdef QPREP
        launch((const void *)decode_combine_online, dim3(H * ((DV + 31) / 32), 1, 1), 256, 0, dependent, args);  // as the -q paths
#else
        launch((const void *)decode_combine, dim3(H * ((DV + 31) / 32), 1, 1), 256, 0, dependent, args);
#endif
    };
    auto step = [&](int set, bool with_combine) {
#ifdef QPREP
        {
            void *args[] = {&dtab, (void *)&one, &dq, (void *)&QN, &dimg};
            launch((const void *)decode_qprep, dim3(HBLK, QPREP_SLICES, 1), 256, 0, false, args);
        }
#endif
        unsigned long long *cp = dptr + set;
        int ns = nsplit, ch = chunk;
        void *args[] = {&cp, &dlen, &dtab, (void *)&one, &qarg, (void *)&QN, &dout, (void *)&ON, (void *)&scale_log2, &ns, &ch, &dml, &dacc};
        launch((const void *)KERNEL, dim3(HBLK, nsplit, 1), NTHREADS, shared, pdl, args);
        if (nsplit > 1 && with_combine) combine(pdl);
    };
    step(0, true);
    CK(cudaStreamSynchronize(st));
    CK(cudaGetLastError());
    std::vector<float> out((size_t)H * DV);
    CK(cudaMemcpy(out.data(), dout, out.size() * 4, cudaMemcpyDeviceToHost));
    double err = 0;
    for (int i = 0; i < H * DV; i++) { double e = fabs(out[i] - ref[i]); if (!(e <= err)) err = e; }
    if (check)
        printf("CHECK %s L=%d splits=%d rel_err %.3g %s\n", name, L, nsplit, err / refmax, err / refmax < 2e-2 ? "OK" : "WRONG");

    // Timing: a graph of 20 steps (rotating the cache copies), replayed; median of 5 replays.
    cudaGraph_t graph; cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int it = 0; it < 20; it++) step(it % sets, !main_only);
    CK(cudaStreamEndCapture(st, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    cudaEvent_t a, b; cudaEventCreate(&a); cudaEventCreate(&b);
    CK(cudaGraphLaunch(exec, st));
    std::vector<float> runs;
    for (int r = 0; r < 5; r++) {
        cudaEventRecord(a, st);
        CK(cudaGraphLaunch(exec, st));
        cudaEventRecord(b, st); cudaEventSynchronize(b);
        float ms; cudaEventElapsedTime(&ms, a, b);
        runs.push_back(ms);
    }
    std::sort(runs.begin(), runs.end());
    const float us = runs[2] * 1000 / 20;
    CK(cudaGetLastError());
    const double bytes = (double)L * DK * 2;
#ifdef PROBE_TIMELINE
    {   // one more step, stamped: where a block's time goes
        step(0, true);
        CK(cudaStreamSynchronize(st));
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
        printf("TIMELINE %s L=%d: entry spread med %.2f max %.2f us; prologue med %.2f max %.2f; loop med %.2f max %.2f; "
               "epilogue med %.2f max %.2f; first entry to last exit %.2f us\n", name, L, med(entry), mx(entry), med(pro), mx(pro),
               med(loop), mx(loop), med(epi), mx(epi), (last - first) * 1e-3);
    }
#endif
    printf("TIME %s L=%d splits=%d %s%s %.1f us %.0f GB/s\n", name, L, nsplit, main_only ? "main" : "step", pdl ? "+pdl" : "", us,
           bytes / (us * 1e-6) / 1e9);
    return 0;
}
