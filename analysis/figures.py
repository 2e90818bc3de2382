"""PNG figures (matplotlib, non-interactive Agg backend). Each function writes
one file and returns its name, or None when the rows hold nothing to plot."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
# Labels carry text from the CSVs (variant, scope, FMA width); with mathtext on, a `$`
# in them is parsed as TeX and a malformed one raises at savefig. No label here uses TeX.
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import model  # noqa: E402
from .tables import LABEL, variant_key  # noqa: E402

MARKERS = "osD^v<>p*h"
STYLES = ["-", "--", ":", "-."]


def color(v: str):
    """One colour per variant, the same in every figure."""
    return plt.get_cmap("tab10")(variant_key(v) % 10)


def _variants(rows):
    return sorted(rows["variant"].unique(), key=variant_key)


def _save(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=120)
    plt.close(fig)
    return name


def _log_if_wide(ax, axis, values):
    v = np.asarray(values, float)
    v = v[np.isfinite(v) & (v > 0)]
    if len(v) and v.max() / v.min() >= 10:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
        if v.max() / v.min() < 100:  # few decades: label the minor ticks too, in plain numbers
            a = ax.xaxis if axis == "x" else ax.yaxis
            a.set_major_formatter(ticker.ScalarFormatter())
            a.set_minor_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}" if str(int(x))[0] in "25" else ""))


def latency_vs_context(rows: pd.DataFrame, out_dir: str) -> str | None:
    scopes = sorted(rows["scope"].unique())
    if rows.empty:
        return None
    fig, axes = plt.subplots(1, len(scopes), figsize=(5.5 * len(scopes), 4.2), squeeze=False)
    for ax, scope in zip(axes[0], scopes):
        s = rows[rows["scope"] == scope]
        tps = sorted(s["tp"].unique())
        for (v, tp), g in sorted(s.groupby(["variant", "tp"]), key=lambda x: (variant_key(x[0][0]), x[0][1])):
            g = g.groupby("context")["step_us_median"].median()
            j = tps.index(tp)
            ax.plot(g.index, g.values, color=color(v), ls=STYLES[j % len(STYLES)], marker=MARKERS[j % len(MARKERS)],
                    label=f"{LABEL.get(v, v)} t={int(tp)}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context L (tokens)")
        ax.set_ylabel("decode step, median (µs)")
        ax.set_title(f"Latency vs context ({scope} scope)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, out_dir, "latency_vs_context.png")


def cache_traffic_vs_tp(rows: pd.DataFrame, out_dir: str) -> str | None:
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, v in enumerate(_variants(rows)):
        g = rows[rows["variant"] == v].groupby("tp")["kv_bytes_per_token"].max()
        ax.plot(g.index, g.values, color=color(v), marker=MARKERS[i % len(MARKERS)], label=LABEL.get(v, v))
    ax.set_xscale("log", base=2)
    tps = sorted(rows["tp"].unique())
    ax.set_xticks(tps, [str(int(t)) for t in tps])
    _log_if_wide(ax, "y", rows["kv_bytes_per_token"])
    ax.set_xlabel("TP degree t (ranks)")
    ax.set_ylabel("per-device KV cache per token per layer (bytes)")
    ax.set_title("Per-device cache traffic vs TP")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "cache_traffic_vs_tp.png")


def roofline(rows: pd.DataFrame, out_dir: str) -> str | None:
    # Both axes are logarithmic: a point needs a positive intensity and rate (a kernel
    # with 0 FLOPs has none to plot).
    df = rows[(rows["kernel_bytes_per_step"] > 0) & (rows["kernel_flops_per_step"] > 0)
              & (rows["achieved_gflops"] > 0)]
    if df.empty:
        return None
    ai = df["kernel_flops_per_step"] / df["kernel_bytes_per_step"]
    # The roof of the harness's roofline_us: read bandwidth and max(sgemm, FMA), medians over rows.
    bw, peak = df["calib_read_gbs"].median(), model.compute_peak_gflops(df).median()
    sgemm, fma = df["calib_sgemm_gflops"].median(), df["calib_fma_gflops"].median()
    lo, hi = min(ai.min(), peak / bw) / 4, max(ai.max(), peak / bw) * 4
    x = np.geomspace(lo, hi, 200)
    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    if np.isfinite(fma):
        width = sorted({str(v).strip() for v in df.get("calib_fma_width", pd.Series(dtype=str)).dropna()} - {"", "nan"})
        fma_label = f"FMA {fma:.1f}" + (f" ({', '.join(width)})" if width else "")
        parts = f"max of sgemm {sgemm:.1f}, {fma_label}"
    else:
        parts = f"sgemm {sgemm:.1f}; no FMA figure"
    ax.plot(x, np.minimum(bw * x, peak), "k-", lw=2, label=f"read {bw:.1f} GB/s, peak {peak:.1f} GFLOP/s ({parts})")
    for i, v in enumerate(_variants(df)):
        m = df["variant"] == v
        ax.scatter(ai[m], df.loc[m, "achieved_gflops"], color=color(v), marker=MARKERS[i % len(MARKERS)],
                   label=LABEL.get(v, v), zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte of cache streamed)")
    ax.set_ylabel("achieved kernel rate (GFLOP/s per rank)")
    ax.set_title("Roofline (measured roofs from calib_* columns)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out_dir, "roofline.png")


def scaling_vs_tp(scaling: pd.DataFrame, out_dir: str) -> str | None:
    """Strong-scaling efficiency against TP, one line per (scope, variant) at the longest context."""
    if scaling.empty or scaling["tp"].nunique() < 2:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    unlabel = {lab: v for v, lab in LABEL.items()}
    scopes = sorted(scaling["scope"].unique())
    for (scope, v), g in scaling.groupby(["scope", "variant"], sort=False):
        longest = g["context"].max()
        g = g[g["context"] == longest].groupby("tp")[["speedup", "efficiency"]].median()
        style = dict(color=color(unlabel.get(v, v)), ls=STYLES[scopes.index(scope) % len(STYLES)],
                     marker=MARKERS[scopes.index(scope) % len(MARKERS)], label=f"{v} ({scope}, L={int(longest)})")
        a1.plot(g.index, g["speedup"], **style)
        a2.plot(g.index, g["efficiency"], **style)
    a2.set_ylim(0, max(1.1, float(scaling["efficiency"].max()) * 1.05))
    tps = sorted(scaling["tp"].unique())
    a1.plot(tps, tps, "k:", label="ideal")
    a2.axhline(1.0, color="k", ls=":", label="ideal")
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(tps, [str(int(t)) for t in tps])
        ax.set_xlabel("TP degree t (ranks)")
        ax.grid(True, which="both", alpha=0.3)
    a1.set_ylabel("speedup T(1)/T(t) (×)")
    a2.set_ylabel("strong-scaling efficiency T(1)/(t·T(t))")
    a1.set_title("Speedup vs TP (longest context)")
    a2.set_title("Efficiency vs TP (longest context)")
    a2.legend(fontsize=7)
    return _save(fig, out_dir, "scaling_vs_tp.png")


def latency_distributions(samples: pd.DataFrame, out_dir: str) -> str | None:
    if samples.empty:
        return None
    labels, data = [], []
    keys = ["scope", "variant", "tp", "context", "batch"]
    groups = sorted(samples.groupby(keys), key=lambda kg: (kg[0][0], variant_key(kg[0][1]), *kg[0][2:]))
    for k, g in groups:
        labels.append(f"{LABEL.get(k[1], k[1])} t={int(k[2])}\nL={int(k[3])} {k[0]}")
        data.append(g["step_us"].to_numpy(float))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(data) + 2), 4.6))
    ax.boxplot(data, whis=(10, 90), showfliers=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45, ha="right", fontsize=7)
    _log_if_wide(ax, "y", np.concatenate(data))
    ax.set_ylabel("decode step (µs)")
    ax.set_title("Per-step latency distributions (box: p25–p75, whiskers: p10–p90)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return _save(fig, out_dir, "latency_distributions.png")


def paper_vs_model(comparison: pd.DataFrame, out_dir: str) -> str | None:
    if comparison.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    x = comparison["L (tokens)"].to_numpy()
    for i, v in enumerate(["GQA", "MLA", "GLA-2", "MLRA-4"]):
        line, = ax.plot(x, comparison[f"{v} paper"], marker=MARKERS[i], label=f"{v} paper (H100)")
        ax.plot(x, comparison[f"{v} model"], ls="--", color=line.get_color(), label=f"{v} model (H100 roofline)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, comparison["context"])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.set_yscale("log")
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("decode kernel latency (µs)")
    ax.set_title("Paper (Liu et al. 2026) vs this model, one H100")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, out_dir, "paper_vs_model.png")
