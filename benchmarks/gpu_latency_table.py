"""The paper's per-device decode-kernel shapes (method §6) on one GPU, measured by
`mlra bench --device cuda`, with PyTorch on the same GPU in the same run.

Prints, per shape and context: µs (CUDA-graph replay median), achieved GB/s and TFLOP/s,
the fraction of the measured read bandwidth; then the MLA/MLRA-4 and GQA/MLRA-4 ratios,
PyTorch's best and our speed-up over it; then short contexts (8K, 32K at batch 1, 16,
64): launch overhead (launched vs graph) and split-KV (default vs one split).
Every row's full CSV goes to <out>/gpu_bench.csv; the calibration to <out>/gpu_calibration.json.
"""
import argparse
import csv
import io
import os
import subprocess
import sys

SHAPES = [  # name, mlra bench flags (one device's share, method §6)
    ("gqa", ["--variant", "gqa", "--heads", "64", "--kv-heads", "8", "--tp", "8"]),
    ("mla", ["--variant", "mla", "--heads", "64", "--tp", "1"]),
    ("gla2", ["--variant", "gla2", "--heads", "64", "--tp", "2"]),
    ("mlra4", ["--variant", "mlra4", "--heads", "64", "--tp", "4"]),
]
# --new: the paths of docs/gpu-kernels.md "The query image, ..." beside each shape's default.
NEW = {"gqa": [["--gpu-kernel", "warps-pdl"]],
       "mla": [["--gpu-kernel", "wgmma-q"], ["--gpu-kernel", "wgmma-q", "--gpu-tile", "16"]],
       "gla2": [["--gpu-kernel", "wgmma-solo-q"], ["--gpu-kernel", "wgmma-solo-q", "--gpu-tile", "32"]],
       "mlra4": [["--gpu-kernel", "wgmma-solo-q"], ["--gpu-kernel", "wgmma-solo-q", "--gpu-tile", "32"]]}
COMMON = ["--head-dim", "128", "--rope-dim", "64", "--kv-rank", "512", "--kv-dtype", "bf16", "--format", "csv"]


def bench(mlra, cal, flags, context, batch=1, extra=()):
    cmd = [mlra, "bench", "--device", "cuda", "--calibration", cal, "--context", str(context), "--batch", str(batch),
           *COMMON, *flags, *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(f"FAILED: {' '.join(cmd)}\n{p.stderr}")
        return None
    return next(csv.DictReader(io.StringIO(p.stdout)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlra", default=os.environ.get("MLRA", "mlra"))
    ap.add_argument("--out", default="results")
    ap.add_argument("--contexts", default="131072,524288,1048576,2097152")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-short", action="store_true")
    ap.add_argument("--new", action="store_true", help="also time the new paths (NEW) beside each default")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    cal = os.path.join(a.out, "gpu_calibration.json")
    with open(cal, "w") as f:
        subprocess.run([a.mlra, "calibrate", "--device", "cuda", "--format", "json"], stdout=f, check=True)
    print(subprocess.run([a.mlra, "calibrate", "--device", "cuda"], capture_output=True, text=True).stdout, flush=True)

    contexts = [int(c) for c in a.contexts.split(",")]
    rows, new_rows = [], []
    print(f"{'shape':6} {'context':>8} {'us':>9} {'GB/s':>8} {'TFLOP/s':>8} {'of read BW':>10} {'launched us':>11}  kernel")
    for name, flags in SHAPES:
        for L in contexts:
            for extra in [[]] + (NEW[name] if a.new else []):
                r = bench(a.mlra, cal, flags, L, extra=extra)
                if r is None:
                    continue
                r["shape"] = name
                (new_rows if extra else rows).append(r)
                print(f"{name:6} {L:>8} {float(r['kernel_us_median']):>9.1f} {float(r['achieved_gbs']):>8.0f} "
                      f"{float(r['achieved_gflops']) / 1e3:>8.1f} {float(r['read_bw_fraction']):>10.3f} "
                      f"{float(r['step_us_median']):>11.1f}  {'NEW ' if extra else ''}{r['gpu_kernel']}", flush=True)

    by = {(r["shape"], int(r["context"])): float(r["kernel_us_median"]) for r in rows}
    best = dict(by)  # the fastest of the default and the new paths
    for r in new_rows:
        k = (r["shape"], int(r["context"]))
        best[k] = min(best.get(k, float("inf")), float(r["kernel_us_median"]))
    print("\nratios (graph-replay medians; bytes alone give MLA/MLRA-4 = 3.0)")
    for L in contexts:
        m, g, x = by.get(("mla", L)), by.get(("gqa", L)), by.get(("mlra4", L))
        if x:
            print(f"  {L:>8}: MLA/MLRA-4 {m / x if m else float('nan'):.2f}   GQA/MLRA-4 {g / x if g else float('nan'):.2f}")
    if new_rows:
        print("ratios, the fastest of default and new per shape")
        for L in contexts:
            m, g, x = best.get(("mla", L)), best.get(("gqa", L)), best.get(("mlra4", L))
            if x:
                print(f"  {L:>8}: MLA/MLRA-4 {m / x if m else float('nan'):.2f}   GQA/MLRA-4 {g / x if g else float('nan'):.2f}")
    rows += new_rows

    if not a.no_torch:
        here = os.path.dirname(os.path.abspath(__file__))
        p = subprocess.run([sys.executable, os.path.join(here, "gpu_torch_peer.py"), a.contexts], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"\nPyTorch peer not run: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
        else:
            with open(os.path.join(a.out, "gpu_torch_peer.csv"), "w") as f:
                f.write(p.stdout)
            print("\nPyTorch on the same GPU (best of SDPA backends that accept the shape, and matmul-softmax-matmul)")
            print(f"{'shape':6} {'context':>8} {'torch us':>9} {'method':>9} {'mlra us':>9} {'speed-up':>8}")
            for t in csv.DictReader(io.StringIO(p.stdout)):
                ours = by.get((t["shape"], int(t["context"])))
                best = float(t["best_us"]) if t["best_us"] not in ("", "nan") else float("nan")
                print(f"{t['shape']:6} {int(t['context']):>8} {best:>9.1f} {t['best_method']:>9} "
                      f"{ours if ours else float('nan'):>9.1f} {best / ours if ours else float('nan'):>8.2f}")

    if not a.no_short:
        print("\nshort contexts: launch overhead (launched − graph) and split-KV (default vs --gpu-splits 1)")
        print(f"{'shape':6} {'context':>7} {'batch':>5} {'graph us':>9} {'launched':>9} {'1 split':>9}  kernel")
        for name, flags in SHAPES:
            for L in (8192, 32768):
                for B in (1, 16, 64):
                    r = bench(a.mlra, cal, flags, L, B)
                    one = bench(a.mlra, cal, flags, L, B, ["--gpu-splits", "1", "--no-full-check"])
                    if r is None:
                        continue
                    r["shape"] = name
                    rows.append(r)
                    print(f"{name:6} {L:>7} {B:>5} {float(r['kernel_us_median']):>9.1f} {float(r['step_us_median']):>9.1f} "
                          f"{float(one['kernel_us_median']) if one else float('nan'):>9.1f}  {r['gpu_kernel']}", flush=True)

    with open(os.path.join(a.out, "gpu_bench.csv"), "w", newline="") as f:
        if rows:
            w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            w.writeheader()
            w.writerows(rows)


if __name__ == "__main__":
    main()
