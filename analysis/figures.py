"""PNG figures (matplotlib, non-interactive Agg backend). Each function writes its
files and returns their names (an empty list when there is nothing to plot).

House rules, kept here once: one colour per variant in every figure (`color`);
the legend outside the axes (`_legend`); no image wider than MAX_WIDTH_PX (`_grid`
wraps facets into rows, `_pages` splits into files, `_save` caps the resolution);
error bars from the tables' 95% intervals; tick labels in plain units (1K, 8K, 1M
tokens; µs, ms)."""

from __future__ import annotations

import math
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
from .stats import HI, LO  # noqa: E402
from .tables import LABEL, Table, tokens_text, variant_key  # noqa: E402

MARKERS = "osD^v<>p*h"
STYLES = ["-", "--", ":", "-."]
DPI = 120
MAX_WIDTH_PX = 3000
PANEL = (5.0, 3.8)      # inches per facet
LEGEND_WIDTH = 2.8      # inches beside the facets for the legend
MAX_COLUMNS = 3         # 3 facets + legend = 17.8 in = 2136 px at DPI
MAX_FACETS = 9          # per file; more go into name_2.png, name_3.png, …
UNLABEL = {lab: v for v, lab in LABEL.items()}


def color(v: str):
    """One colour per variant (its name or its label), the same in every figure."""
    return plt.get_cmap("tab10")(variant_key(UNLABEL.get(v, v)) % 10)


def time_text(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:g} s"
    if us >= 1e3:
        return f"{us / 1e3:g} ms"
    return f"{us:g} µs"


def _log_axis(ax, axis: str, kind: str) -> None:
    """A logarithmic axis with plain labels: "tokens" (base 2: 1K, 8K, 1M), "time"
    (µs, ms, s) or "plain" (numbers as %g)."""
    a = ax.xaxis if axis == "x" else ax.yaxis
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log", base=2 if kind == "tokens" else 10)
    if kind != "tokens":
        a.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    text = {"tokens": tokens_text, "time": time_text, "plain": lambda x: f"{x:g}"}[kind]
    a.set_major_formatter(ticker.FuncFormatter(lambda x, _: text(x)))
    a.set_minor_formatter(ticker.NullFormatter())


def _variants(rows):
    return sorted(rows["variant"].unique(), key=variant_key)


def _pages(items: list, per_page: int = MAX_FACETS) -> list[list]:
    return [items[i:i + per_page] for i in range(0, len(items), per_page)]


def _page_name(name: str, page: int) -> str:
    return name if page == 0 else name.replace(".png", f"_{page + 1}.png")


def _grid(n: int, ncols: int = MAX_COLUMNS, panel=PANEL):
    """A figure of n facets, at most ncols a row, with room on the right for the legend."""
    cols = max(1, min(n, ncols))
    nrows = math.ceil(n / cols)
    fig = plt.figure(figsize=(cols * panel[0] + LEGEND_WIDTH, nrows * panel[1]), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, list(axes[:n])


def _legend(fig, axes) -> None:
    """One legend for the whole figure, outside every axes (never over the data)."""
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    if seen:
        fig.legend(list(seen.values()), list(seen.keys()), loc="outside right upper", fontsize=7)


def _save(fig, out_dir: str, name: str) -> str:
    # The layout is fixed (constrained, legend inside the figure), so the width in
    # pixels is the figure's width times dpi: capped here whatever a caller asked for.
    fig.savefig(os.path.join(out_dir, name), dpi=min(DPI, MAX_WIDTH_PX / fig.get_figwidth()))
    plt.close(fig)
    return name


def _errorbar(ax, x, df: pd.DataFrame, col: str, **style) -> None:
    """Points of column col with error bars from its interval columns (none where missing)."""
    y = df[col].to_numpy(float)
    lo = df[col + LO].to_numpy(float) if col + LO in df else y
    hi = df[col + HI].to_numpy(float) if col + HI in df else y
    err = np.vstack([np.nan_to_num(y - lo), np.nan_to_num(hi - y)]).clip(min=0)
    ax.errorbar(x, y, yerr=err, capsize=2, **style)


def _value_columns(df: pd.DataFrame, index: list[str]) -> list[str]:
    return [c for c in df.columns if c not in index and not c.endswith((LO, HI))]


def _facet_title(key: dict) -> str:
    return ", ".join(f"{c} {v:g}" if isinstance(v, float) else f"{c} {v}" for c, v in key.items()) or "all rows"


def _facets(data: pd.DataFrame, by: list[str]) -> list[tuple[dict, pd.DataFrame]]:
    if not by:
        return [({}, data)]
    return [(dict(zip(by, k if isinstance(k, tuple) else (k,))), g)
            for k, g in data.groupby(by, dropna=False, sort=False)]


def latency_vs_context(latency: Table, out_dir: str) -> list[str]:
    """One facet per row group of the latency table (equal work), one line per layout."""
    d = latency.data
    if d.empty:
        return []
    by = [c for c in d.columns[:list(d.columns).index("context")]]
    layouts = _value_columns(d, by + ["context"])
    # Colour: the variant; line and marker: the TP degree ("MLA t=2 dp=1" → 2).
    tp_of = {col: col.split(" t=")[1].split(" ")[0] if " t=" in col else "" for col in layouts}
    tps = sorted(set(tp_of.values()), key=lambda t: (len(t), t))
    names = []
    for page, facets in enumerate(_pages(_facets(d, by))):
        fig, axes = _grid(len(facets))
        for ax, (key, g) in zip(axes, facets):
            g = g.sort_values("context")
            for col in layouts:
                if g[col].notna().any():
                    j = tps.index(tp_of[col])
                    _errorbar(ax, g["context"], g, col, color=color(col.split(" ")[0]), ls=STYLES[j % len(STYLES)],
                              marker=MARKERS[j % len(MARKERS)], label=col)
            _log_axis(ax, "x", "tokens")
            _log_axis(ax, "y", "time")
            ax.set_xlabel("context L (tokens)")
            ax.set_ylabel("decode step, median")
            ax.set_title(_facet_title(key), fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
        _legend(fig, axes)
        fig.suptitle("Latency vs context (95% intervals)")
        names.append(_save(fig, out_dir, _page_name("latency_vs_context.png", page)))
    return names


def cache_traffic_vs_tp(rows: pd.DataFrame, out_dir: str) -> list[str]:
    if rows.empty or rows["kv_bytes_per_token"].dropna().le(0).all():
        return []
    fig, (ax,) = _grid(1, panel=(6, 4.2))
    for i, v in enumerate(_variants(rows)):
        g = rows[rows["variant"] == v].groupby("tp")["kv_bytes_per_token"].max()
        ax.plot(g.index, g.values, color=color(v), marker=MARKERS[i % len(MARKERS)], label=LABEL.get(v, v))
    ax.set_xscale("log", base=2)
    tps = sorted(rows["tp"].dropna().unique())
    ax.set_xticks(tps, [str(int(t)) for t in tps])
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    if rows["kv_bytes_per_token"].dropna().gt(0).any():
        _log_axis(ax, "y", "tokens")
    ax.set_xlabel("TP degree t (ranks)")
    ax.set_ylabel("per-device KV cache per token per layer (bytes)")
    ax.set_title("Per-device cache traffic vs TP")
    ax.grid(True, which="both", alpha=0.3)
    _legend(fig, [ax])
    return [_save(fig, out_dir, "cache_traffic_vs_tp.png")]


def roofline(rows: pd.DataFrame, out_dir: str) -> list[str]:
    # Both axes are logarithmic: a point needs a positive intensity and rate (a kernel
    # with 0 FLOPs has none to plot).
    df = rows[(rows["kernel_bytes_per_step"] > 0) & (rows["kernel_flops_per_step"] > 0)
              & (rows["achieved_gflops"] > 0)]
    if df.empty:
        return []
    ai = df["kernel_flops_per_step"] / df["kernel_bytes_per_step"]
    # The roof of the harness's roofline_us: read bandwidth and max(sgemm, FMA), medians over rows.
    bw, peak = df["calib_read_gbs"].median(), model.compute_peak_gflops(df).median()
    sgemm, fma = df["calib_sgemm_gflops"].median(), df["calib_fma_gflops"].median()
    fig, (ax,) = _grid(1, panel=(6.5, 4.6))
    if np.isfinite(bw) and np.isfinite(peak):
        lo, hi = min(ai.min(), peak / bw) / 4, max(ai.max(), peak / bw) * 4
        x = np.geomspace(lo, hi, 200)
        if np.isfinite(fma):
            width = sorted({str(v).strip() for v in df.get("calib_fma_width", pd.Series(dtype=str)).dropna()} - {"", "nan"})
            fma_label = f"FMA {fma:.1f}" + (f" ({', '.join(width)})" if width else "")
            parts = f"max of sgemm {sgemm:.1f}, {fma_label}"
        else:
            parts = f"sgemm {sgemm:.1f}; no FMA figure"
        ax.plot(x, np.minimum(bw * x, peak), "k-", lw=2, label=f"read {bw:.1f} GB/s,\npeak {peak:.1f} GFLOP/s\n({parts})")
    for i, v in enumerate(_variants(df)):
        m = df["variant"] == v
        ax.scatter(ai[m], df.loc[m, "achieved_gflops"], color=color(v), marker=MARKERS[i % len(MARKERS)],
                   label=LABEL.get(v, v), zorder=3)
    _log_axis(ax, "x", "plain")
    _log_axis(ax, "y", "plain")
    ax.set_xlabel("arithmetic intensity (FLOP/byte of cache streamed)")
    ax.set_ylabel("achieved kernel rate (GFLOP/s per rank)")
    ax.set_title("Roofline (measured roofs from calib_* columns)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(fig, [ax])
    return [_save(fig, out_dir, "roofline.png")]


def scaling_vs_tp(scaling: Table, out_dir: str) -> list[str]:
    """Speedup and efficiency against TP with 95% error bars, one line per configuration
    group and variant at its longest context."""
    d = scaling.data
    if d.empty or d["tp"].nunique() < 2:
        return []
    by = [c for c in d.columns[:list(d.columns).index("variant")]]
    fig, (a1, a2) = _grid(2)
    groups = _facets(d, by)
    for gi, (key, g0) in enumerate(groups):
        for v, g in g0.groupby("variant", sort=False):
            longest = g["context"].max()
            g = g[g["context"] == longest].sort_values("tp").drop_duplicates("tp")
            name = f"{v} ({_facet_title(key)}, L={tokens_text(longest)})"
            style = dict(color=color(v), ls=STYLES[gi % len(STYLES)], marker=MARKERS[gi % len(MARKERS)], label=name)
            _errorbar(a1, g["tp"], g, "speedup", **style)
            _errorbar(a2, g["tp"], g, "efficiency", **style)
    a2.set_ylim(0, max(1.1, float(d["efficiency" + HI].max(skipna=True) if d["efficiency" + HI].notna().any()
                                   else d["efficiency"].max()) * 1.05))
    tps = sorted(d["tp"].unique())
    a1.plot(tps, tps, "k:", label="ideal")
    a2.axhline(1.0, color="k", ls=":")
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xticks(tps, [str(int(t)) for t in tps])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlabel("TP degree t (ranks)")
        ax.grid(True, which="both", alpha=0.3)
    a1.set_ylabel("speedup T(1)/T(t) (×)")
    a2.set_ylabel("strong-scaling efficiency T(1)/(t·T(t))")
    a1.set_title("Speedup vs TP (longest context)", fontsize=9)
    a2.set_title("Efficiency vs TP (longest context)", fontsize=9)
    _legend(fig, [a1, a2])
    return [_save(fig, out_dir, "scaling_vs_tp.png")]


BOXES_PER_PANEL = 30


def latency_distributions(samples: pd.DataFrame, out_dir: str) -> list[str]:
    if samples.empty:
        return []
    keys = ["scope", "variant", "tp", "context", "batch"]
    groups = sorted(samples.groupby(keys), key=lambda kg: (str(kg[0][0]), variant_key(kg[0][1]), *kg[0][2:]))
    boxes = [(f"{LABEL.get(k[1], k[1])} t={int(k[2])}\nL={tokens_text(k[3])} {k[0]}", k[1],
              g["step_us"].to_numpy(float)) for k, g in groups]
    names = []
    panels = _pages(boxes, BOXES_PER_PANEL)
    for page, chunk in enumerate(_pages(panels, 4)):
        fig, axes = _grid(len(chunk), ncols=1, panel=(0.5 * BOXES_PER_PANEL + 1, 4.2))
        for ax, panel in zip(axes, chunk):
            art = ax.boxplot([b[2] for b in panel], whis=(10, 90), showfliers=True, patch_artist=True)
            for patch, b in zip(art["boxes"], panel):
                patch.set_facecolor(color(b[1]))
                patch.set_alpha(0.6)
            ax.set_xticks(range(1, len(panel) + 1), [b[0] for b in panel], rotation=45, ha="right", fontsize=7)
            _log_axis(ax, "y", "time")
            ax.set_ylabel("decode step")
            ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.suptitle("Per-step latency distributions (box: p25–p75, whiskers: p10–p90)")
        names.append(_save(fig, out_dir, _page_name("latency_distributions.png", page)))
    return names


def paper_vs_model(comparison: pd.DataFrame, out_dir: str) -> list[str]:
    if comparison.empty:
        return []
    fig, (ax,) = _grid(1, panel=(6.5, 4.4))
    x = comparison["L (tokens)"].to_numpy()
    for i, v in enumerate(["GQA", "MLA", "GLA-2", "MLRA-4"]):
        ax.plot(x, comparison[f"{v} paper"], marker=MARKERS[i], color=color(v), label=f"{v} paper (H100)")
        ax.plot(x, comparison[f"{v} model"], ls="--", color=color(v), label=f"{v} model (H100 roofline)")
    _log_axis(ax, "x", "tokens")
    ax.set_xticks(x, comparison["context"])
    _log_axis(ax, "y", "time")
    ax.set_xlabel("context (tokens)")
    ax.set_ylabel("decode kernel latency")
    ax.set_title("Paper (Liu et al. 2026) vs this model, one H100")
    ax.grid(True, which="both", alpha=0.3)
    _legend(fig, [ax])
    return [_save(fig, out_dir, "paper_vs_model.png")]


def paper_layout(times: Table, ratios: Table, paper: pd.DataFrame, out_dir: str) -> list[str]:
    """Per row group: the per-device kernel time of each paper layout against context,
    and the measured ratios MLA/MLRA-4, GQA/MLRA-4 beside what bytes, FLOPs and the
    paper give (colour: the numerator's variant)."""
    d = times.data
    if d.empty:
        return []
    by = [c for c in d.columns[:list(d.columns).index("context")]]
    layouts = _value_columns(d, by + ["context"])
    rd = ratios.data
    names = []
    for page, facets in enumerate(_pages(_facets(d, by), 3)):
        fig, axes = _grid(2 * len(facets), ncols=2)
        for n, (key, g) in enumerate(facets):
            at, ar = axes[2 * n], axes[2 * n + 1]
            g = g.sort_values("context")
            for j, col in enumerate(layouts):
                if g[col].notna().any():
                    _errorbar(at, g["context"], g, col, color=color(col.split(" ")[0]), marker=MARKERS[j],
                              label=col)
            _log_axis(at, "x", "tokens")
            _log_axis(at, "y", "time")
            at.set_xlabel("context L (tokens)")
            at.set_ylabel("kernel time per device, median")
            at.set_title(_facet_title(key), fontsize=9)
            if not rd.empty:
                mine = rd[np.logical_and.reduce([rd[c] == v for c, v in key.items()])] if key else rd
                for name, h in mine.groupby("ratio", sort=False):
                    v = name.split("/")[0]
                    h = h.sort_values("context")
                    _errorbar(ar, h["context"], h, "measured", color=color(v), marker="o", label=f"{name} measured")
                    ar.plot(h["context"], h["bytes predict"], color=color(v), ls="--", label=f"{name} bytes predict")
                    ar.plot(h["context"], h["FLOPs predict"], color=color(v), ls=":", label=f"{name} FLOPs predict")
                    num = paper[paper["variant"] == UNLABEL.get(v, v)].set_index("context")["latency_us"]
                    den = paper[paper["variant"] == "mlra4"].set_index("context")["latency_us"]
                    ar.plot(num.index, num / den, color=color(v), ls="none", marker="x", label=f"{name} paper (H100)")
            _log_axis(ar, "x", "tokens")
            ar.set_xlabel("context L (tokens)")
            ar.set_ylabel("T(variant) / T(MLRA-4) (×)")
            ar.axhline(1.0, color="k", lw=0.8)
            ar.set_title("ratios, 95% intervals", fontsize=9)
            for ax in (at, ar):
                ax.grid(True, which="both", alpha=0.3)
        _legend(fig, axes)
        fig.suptitle("The paper's layout: MLA t=1, GLA-2 t=2, MLRA-4 t=4, GQA t=8")
        names.append(_save(fig, out_dir, _page_name("paper_layout.png", page)))
    return names


def noise_spectra(reports: list[dict], out_dir: str) -> list[str]:
    """The noise probe's amplitude spectrum per node (one facet per host and probe run), one
    line per rank: frequency in Hz on a log axis, amplitude as % of the mean work per quantum."""
    facets = {}
    for r in reports:
        for k in r["ranks"]:
            facets.setdefault((k["host"], r.get("started", "")), []).append(k)
    names = []
    for page, chunk in enumerate(_pages(list(facets.items()))):
        fig, axes = _grid(len(chunk))
        for ax, ((host, started), ranks) in zip(axes, chunk):
            for i, k in enumerate(sorted(ranks, key=lambda k: k["rank"])):
                s = k["summary"]
                amp = 100 * np.asarray(s["spectrum_amplitude"], float)
                ax.plot(s["spectrum_hz"], np.where(amp > 0, amp, np.nan), STYLES[i % len(STYLES)], lw=0.9,
                        color=plt.get_cmap("tab10")(i % 10), label=f"rank {k['rank']}")
            _log_axis(ax, "x", "plain")
            _log_axis(ax, "y", "plain")
            ax.set_xlabel("frequency (Hz)")
            ax.set_ylabel("amplitude (% of mean work)")
            ax.set_title(f"{host} {started}", fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
        _legend(fig, axes)
        fig.suptitle("Noise probe (FTQ): spectrum of the work per quantum")
        names.append(_save(fig, out_dir, _page_name("noise_spectra.png", page)))
    return names
