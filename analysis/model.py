"""Performance model for one decode step, hardware presets, and the paper's
per-device shapes (method §4–§6).

    kernel_us    = max(bytes / bandwidth, flops / peak)            (roofline)
    allreduce_us = count · α + 2·(t−1)/t · ar_bytes / β            (ring all-reduce)
    step_us      = kernel_us + weight_bytes / bandwidth + allreduce_us

Units: bytes, FLOP, GB/s = 1e9 B/s, GFLOP/s = 1e9 FLOP/s, µs. Kernel, weights and
all-reduce are assumed not to overlap (the harness runs them one after another).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Hardware:
    name: str
    bandwidth_gbs: float       # memory bandwidth one device streams the cache at
    peak_gflops: float         # arithmetic peak of one device
    ar_latency_us: float       # α: fixed cost of one all-reduce call
    ar_bandwidth_gbs: float    # β: per-device link bandwidth seen by a ring all-reduce
    source: str = ""

    @property
    def ridge(self) -> float:
        """FLOP/byte above which a kernel is compute-bound."""
        return self.peak_gflops / self.bandwidth_gbs


# H100 SXM. HBM3 3.35 TB/s and dense BF16 989.4 TFLOP/s (the datasheet's 1979 is
# with 2:4 sparsity): NVIDIA H100 Tensor Core GPU datasheet. NVLink 4 gives 900 GB/s
# per GPU in both directions together, so a ring sees at most 450 GB/s one way; α is
# an assumed 10 µs for a small NCCL all-reduce inside one 8-GPU NVLink node (order of
# nccl-tests small-message latency; not measured by this project). Only layer- and
# model-scope predictions use α and β; the paper's kernel shapes do not.
H100 = Hardware("h100", bandwidth_gbs=3350.0, peak_gflops=989_400.0, ar_latency_us=10.0,
                ar_bandwidth_gbs=450.0,
                source="NVIDIA H100 SXM datasheet (HBM3 3.35 TB/s, BF16 dense 989.4 TFLOP/s, "
                       "NVLink 900 GB/s bidirectional); all-reduce α = 10 µs assumed")


PEAK_SOURCE = "max(calib_sgemm_gflops, calib_fma_gflops)"


def compute_peak_gflops(rows: pd.DataFrame) -> pd.Series:
    """Each row's f32 compute peak, the one the harness's roofline_us uses (docs/csv-schema.md,
    in schema 1 and 2 alike): max(calib_sgemm_gflops, calib_fma_gflops). A missing or empty
    calib_fma_gflops falls back to calib_sgemm_gflops (and the other way round)."""
    sgemm = pd.to_numeric(rows["calib_sgemm_gflops"], errors="coerce")
    fma = pd.to_numeric(rows["calib_fma_gflops"], errors="coerce") if "calib_fma_gflops" in rows else \
        pd.Series(np.nan, index=rows.index)
    return pd.concat([sgemm, fma], axis=1).max(axis=1, skipna=True)


def local_preset(rows: pd.DataFrame) -> Hardware:
    """The machine that produced `rows`: roofs from the calib_* columns (median over
    rows, per rank; the compute peak is `compute_peak_gflops`), all-reduce α and β
    fitted by least squares to the measured all-reduce times (allreduce_us =
    count·α + ring_bytes/β). Without enough all-reduce measurements α = 1 µs and
    β = the triad bandwidth (a shared-memory copy)."""
    bw = float(rows["calib_read_gbs"].median())
    peak = float(compute_peak_gflops(rows).median())
    triad = float(rows["calib_triad_gbs"].median())
    alpha, beta = 1.0, triad if np.isfinite(triad) and triad > 0 else bw
    src = f"calib_read_gbs and {PEAK_SOURCE} (median over rows)"
    # Only complete rows: an empty (refused) cell would make the least-squares fit NaN.
    ar = rows[(rows["tp"] > 1) & rows["allreduce_us_median"].notna() & (rows["allreduce_count_per_step"] > 0)
              & rows["allreduce_bytes_per_step"].notna()]
    if len(ar) >= 3:
        ring = 2 * (ar["tp"] - 1) / ar["tp"] * ar["allreduce_bytes_per_step"]
        a = np.column_stack([ar["allreduce_count_per_step"], ring / 1e3])  # bytes/1e3 per (GB/s) → µs
        (x_alpha, x_invbeta), *_ = np.linalg.lstsq(a, ar["allreduce_us_median"].to_numpy(float), rcond=None)
        if x_alpha > 0 and x_invbeta > 0:
            alpha, beta = float(x_alpha), float(1 / x_invbeta)
            src += f"; all-reduce α, β fitted to {len(ar)} measured rows"
        else:
            src += "; all-reduce fit not physical, α = 1 µs and β = triad bandwidth assumed"
    else:
        src += "; too few all-reduce rows, α = 1 µs and β = triad bandwidth assumed"
    return Hardware("local", bw, peak, alpha, beta, source=src)


def predict(bytes_: float, flops: float, hw: Hardware, *, weight_bytes: float = 0.0,
            ar_bytes: float = 0.0, ar_count: float = 0.0, tp: int = 1) -> dict:
    """Predicted µs for one step: kernel (roofline), weights, all-reduce, and their sum."""
    kernel = max(bytes_ / (hw.bandwidth_gbs * 1e3), flops / (hw.peak_gflops * 1e3))
    weights = weight_bytes / (hw.bandwidth_gbs * 1e3)
    ar = 0.0
    if tp > 1 and ar_count > 0:
        ar = ar_count * hw.ar_latency_us + 2 * (tp - 1) / tp * ar_bytes / (hw.ar_bandwidth_gbs * 1e3)
    bound = "compute" if flops / max(bytes_, 1) > hw.ridge else "bandwidth"
    return {"kernel_us": kernel, "weights_us": weights, "allreduce_us": ar,
            "step_us": kernel + weights + ar, "bound": bound}


def predict_rows(rows: pd.DataFrame, hw: Hardware) -> pd.DataFrame:
    """The model applied to every CSV row, from the row's plan columns only."""
    out = [predict(r.kernel_bytes_per_step, r.kernel_flops_per_step, hw,
                   weight_bytes=np.nan_to_num(r.weight_bytes_per_rank),
                   ar_bytes=np.nan_to_num(r.allreduce_bytes_per_step),
                   ar_count=np.nan_to_num(r.allreduce_count_per_step), tp=int(r.tp))
           for r in rows.itertuples()]
    return pd.DataFrame(out, index=rows.index)


# ---- method §4/§5 formulas -------------------------------------------------------

GROUPED = {"mha", "mqa", "gqa"}
LATENT = {"mla", "gla2", "mlra2", "mlra4"}


def kv_elems_per_token(variant: str, tp: int, head_dim: int, rope_dim: int,
                       kv_lora_rank: int, block_width: int, kv_heads: int) -> int:
    """Cache elements per token per layer on the busiest rank (method §4 plans)."""
    if variant in GROUPED:
        heads = kv_heads // tp if tp <= kv_heads else 1
        return 2 * heads * head_dim
    n_blocks = kv_lora_rank // block_width
    return max(1, n_blocks // tp) * block_width + rope_dim


def latent_flops_per_token(heads: int, block_width: int, rope_dim: int, blocks: int = 1) -> int:
    """method §5: per branch 2·(d_l + d_r) for scores + 2·d_l for values."""
    return blocks * heads * (2 * (block_width + rope_dim) + 2 * block_width)


# The paper's decode-kernel shapes (method §6): one device's share, bf16, batch 1.
PAPER_SHAPES = {
    #         query heads, cache elements per token, FLOP per cached token
    "gqa":   dict(tp=8, heads=8,  elems=2 * 1 * 128,  flops=8 * 2 * 128 * 2),
    "mla":   dict(tp=1, heads=64, elems=512 + 64,     flops=latent_flops_per_token(64, 512, 64)),
    "gla2":  dict(tp=2, heads=32, elems=256 + 64,     flops=latent_flops_per_token(32, 256, 64)),
    "mlra4": dict(tp=4, heads=64, elems=128 + 64,     flops=latent_flops_per_token(64, 128, 64)),
}


def paper_shape_cost(variant: str, context: int, dtype_bytes: int = 2) -> tuple[int, int]:
    """(bytes, FLOPs) one device streams/computes per decode step for the paper's shape."""
    s = PAPER_SHAPES[variant]
    return context * s["elems"] * dtype_bytes, context * s["flops"]


def crossover_heads(hw: Hardware, block_width: int, rope_dim: int, dtype_bytes: int) -> float:
    """Heads per branch at which an MLA-family kernel turns compute-bound.

    Per cached token a branch group of H heads on one block costs
    H·(4·d_l + 2·d_r) FLOP and (d_l + d_r)·bytes_per_element bytes, so the
    intensity is H·(4·d_l + 2·d_r) / ((d_l + d_r)·b) ≈ 2·H/b·(…) FLOP/byte and the
    kernel is compute-bound once it exceeds the ridge peak/bandwidth:
        H* = ridge · (d_l + d_r) · b / (4·d_l + 2·d_r).
    """
    return hw.ridge * (block_width + rope_dim) * dtype_bytes / (4 * block_width + 2 * rope_dim)
