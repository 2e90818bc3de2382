"""PyTorch on the same GPU, at the shapes of benchmarks/gpu_latency_table.sh: the best of
the SDPA backends that accept the shape, and of matmul-softmax-matmul, for one decode
step (batch 1, bf16). Prints CSV: shape,context,best_us,best_method,<method>_us...

The MLA family is run in its absorbed form, as the harness runs it: every head attends
to one shared latent key of width DK (latent + RoPE) and one value of width DV (the
latent), i.e. multi-query attention with DK != DV. Caches rotate over copies spanning
more than 4 x the L2 (cold cache, as the harness's default). CUDA events, median of 20
after 5 warm-ups.
"""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = {  # name: (query heads, kv heads, DK, DV)
    "gqa": (8, 1, 128, 128),
    "mla": (64, 1, 576, 512),
    "gla2": (32, 1, 320, 256),
    "mlra4": (64, 1, 192, 128),
}


def median_us(fn, sets, warmup=5, reps=20):
    for i in range(warmup):
        fn(*sets[i % len(sets)])
    torch.cuda.synchronize()
    times = []
    for i in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        args = sets[i % len(sets)]
        a.record()
        fn(*args)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    contexts = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [131072, 524288, 1048576, 2097152]
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    methods = ["flash", "efficient", "cudnn", "math", "matmul"]
    print("shape,context,best_us,best_method," + ",".join(m + "_us" for m in methods))
    for name, (h, hkv, dk, dv) in SHAPES.items():
        for L in contexts:
            per_set = L * hkv * (dk + dv) * 2
            n_sets = max(1, -(-4 * l2 // per_set))
            sets = []
            for _ in range(n_sets):
                q = torch.randn(1, h, 1, dk, device="cuda", dtype=torch.bfloat16)
                k = torch.randn(1, hkv, L, dk, device="cuda", dtype=torch.bfloat16)
                v = torch.randn(1, hkv, L, dv, device="cuda", dtype=torch.bfloat16)
                sets.append((q, k, v))
            results = {}
            for m, backend in [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                               ("cudnn", SDPBackend.CUDNN_ATTENTION), ("math", SDPBackend.MATH)]:
                def run(q, k, v, backend=backend):
                    with sdpa_kernel(backend):
                        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
                try:
                    results[m] = median_us(run, sets)
                except Exception:  # the backend refuses the shape
                    results[m] = None

            def matmul(q, k, v):
                s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / dk ** 0.5)
                return torch.matmul(torch.softmax(s.float(), dim=-1).to(v.dtype), v)
            try:
                results["matmul"] = median_us(matmul, sets)
            except Exception:
                results["matmul"] = None
            ok = {m: t for m, t in results.items() if t is not None}
            best = min(ok, key=ok.get) if ok else ""
            cells = ["" if results[m] is None else f"{results[m]:.1f}" for m in methods]
            print(f"{name},{L},{ok.get(best, float('nan')):.1f},{best}," + ",".join(cells), flush=True)
            del sets
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
