"""Assemble the Markdown report (and its figures) from merged rows."""

from __future__ import annotations

import math
import numbers
import os
from datetime import datetime, timezone

import pandas as pd

from . import figures, model, tables
from .merge import Loaded

DATA = os.path.join(os.path.dirname(__file__), "data")


def load_paper() -> tuple[pd.DataFrame, pd.DataFrame]:
    lat = pd.read_csv(os.path.join(DATA, "paper_decode_latency.csv"), comment="#")
    kv = pd.read_csv(os.path.join(DATA, "paper_kv_table1.csv"), comment="#")
    return lat, kv


# Text from the CSVs (host names, variant and file names, warnings quoting cells) is
# written into Markdown; these characters would make structure there: a table cell
# boundary, HTML, a link or a code span. Backslash first, so an escape in the input
# cannot undo ours. Emphasis (`*`, `_`) is left alone: it cannot leave its cell, `_`
# is in every column name, and the report's own cells use `**`.
MD_ESCAPES = [("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"),
              ("[", "\\["), ("]", "\\]"), ("`", "\\`")]


def md_text(text) -> str:
    """Any text as inert Markdown on one line (see MD_ESCAPES)."""
    s = " ".join(str(text).splitlines())
    for a, b in MD_ESCAPES:
        s = s.replace(a, b)
    return s


def fmt(x) -> str:
    if isinstance(x, str):
        return md_text(x)
    if x is None or x is pd.NA or (isinstance(x, numbers.Real) and math.isnan(x)):
        return "–"
    if not isinstance(x, numbers.Real):   # no table should hold one; shown, never a crash
        return md_text(x)
    if isinstance(x, numbers.Integral) or (float(x).is_integer() and abs(x) < 1e15):
        return f"{int(x)}"
    if abs(x) >= 1000:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def distinct(rows: pd.DataFrame, col: str, empty: str = "–") -> str:
    """The distinct non-empty values of a text column, comma-separated (`empty` if none,
    e.g. the schema-2 columns of schema-1 rows)."""
    if col not in rows.columns:
        return empty
    vals = sorted({str(v).strip() for v in rows[col].dropna()} - {"", "nan"})
    return md_text(", ".join(vals)) or empty


def gflops(x: float) -> str:
    """A calibration figure with two decimals, "–" when empty."""
    return "–" if pd.isna(x) else f"{x:.2f}"


def md_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "_no rows_\n"
    head = "| " + " | ".join(md_text(c) for c in df.columns) + " |"   # pivot columns carry variant names
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def build(loaded: Loaded, out_dir: str, samples: Loaded | None = None) -> str:
    """Write report.md and figures into out_dir; return the report's path."""
    os.makedirs(out_dir, exist_ok=True)
    raw = loaded.rows
    rows = tables.collapse_groups(raw)
    # cuda rows (kernel scope on a GPU) are held to a GPU calibration: sections 1-8 (CPU
    # roofs, CPU performance model) take the cpu rows, section 9 the cuda rows.
    on_gpu = rows["device"] == "cuda"
    smp = samples.rows if samples is not None else pd.DataFrame()
    warnings = loaded.warnings + (samples.warnings if samples is not None else [])
    out = []
    w = out.append
    w("# MLRA decode sweep report\n")
    w(f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')} from "
      f"{len(loaded.files)} file(s), {len(raw)} usable row(s) "
      f"({len(rows)} configuration(s) after collapsing TP groups).\n")
    hosts = md_text(", ".join(sorted(map(str, raw["host"].dropna().unique()))))
    revs = md_text(", ".join(sorted(map(str, raw["git_rev"].dropna().unique()))))
    vers = md_text(", ".join(sorted(map(str, raw["harness_version"].dropna().unique()))))
    mpis = md_text("; ".join(sorted(map(str, raw["mpi_library"].dropna().unique()))))
    w(f"- hosts: {hosts or '–'}\n- harness: {vers or '–'} (git {revs or '–'})\n- MPI: {mpis or '–'}\n"
      f"- timing modes: {md_text(', '.join(sorted(map(str, raw['timing_mode'].unique()))))}; "
      f"cold cache: {md_text(', '.join(sorted(map(str, raw['cold_cache'].unique()))))}\n"
      f"- kernel ISA (`kernel_isa`): {distinct(raw, 'kernel_isa', '– (schema-1 rows)')}; "
      f"FMA peak loop (`calib_fma_width`): {distinct(raw, 'calib_fma_width', '– (schema-1 rows)')}\n")
    w("\n## Input\n")
    # File names as escaped text, not code spans: a backtick in a name would end the span.
    w("Files: " + ", ".join(md_text(f) for f in loaded.files) + "\n")
    if samples is not None:
        w("\nSamples files: " + ", ".join(md_text(f) for f in samples.files) + f" ({len(smp)} samples)\n")
    for n in loaded.notes:
        w(f"- {md_text(n)}\n")
    if rows["groups"].max() > 1:
        w("- configurations measured by several TP groups (dp > 1) are shown as the median over groups\n")
    if warnings:
        w(f"\n**{len(warnings)} warning(s): rows or files that could not be used in full**\n\n")
        for x in warnings:
            w(f"- ⚠ {md_text(x)}\n")
    else:
        w("\nNo warnings: every row was usable.\n")
    if not on_gpu.all():
        cpu_sections(w, rows[~on_gpu].reset_index(drop=True), smp, out_dir)
    if on_gpu.any():
        w("\n## 9. GPU kernel rows (device cuda)\n\n")
        w("Kernel scope on each rank's GPU. `step_us_median`: a step with its kernels launched from the host; "
          "`kernel_us_median`: the same step replayed from a CUDA graph (launch = the difference). The roofline "
          "is the row's own, held to the GPU calibration named by `calib_source` (read "
          "`gpu_calib_read_gbs`; tensor-core peak for 16-bit caches, FMA peak for f32).\n\n")
        w(md_table(tables.gpu_table(rows[on_gpu])))
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(out))
    return path


def cpu_sections(w, rows: pd.DataFrame, smp: pd.DataFrame, out_dir: str) -> None:
    """Sections 1-8 over the cpu rows (TP groups collapsed), their figures into out_dir."""
    paper_lat, paper_kv = load_paper()
    local = model.local_preset(rows)
    scaling = tables.scaling_table(rows)
    comparison = tables.paper_comparison(paper_lat, model.H100)
    kv = tables.kv_table(rows, paper_kv)
    figs = {
        "latency": figures.latency_vs_context(rows, out_dir),
        "traffic": figures.cache_traffic_vs_tp(rows, out_dir),
        "roofline": figures.roofline(rows, out_dir),
        "scaling": figures.scaling_vs_tp(scaling, out_dir),
        "dist": figures.latency_distributions(smp, out_dir),
        "paper": figures.paper_vs_model(comparison, out_dir),
    }
    w("\n## 1. Per-device KV cache per token vs TP degree\n\n")
    w("Cache elements and bytes per token per layer on the busiest rank (columns `kv_elems_per_token`, "
      "`kv_bytes_per_token`). Checked: elems × dtype bytes = bytes; the SPEC §4 plan recomputed from the shape "
      "columns (`plan_elems`); `kernel_bytes_per_step` = bytes × context × sequences per group × layers; and the "
      "paper's Table 1 (`paper_in_d_h`, in units of d_h = 128) where the shape is the paper's "
      "(h 64, d_h 128, d_r 64, d_c 512, GQA n_kv 8).\n\n")
    bad = kv["check"] != "ok"
    w(f"**{int(bad.sum())} disagreement(s) flagged.**\n\n" if bad.any() else "All checks agree.\n\n")
    w(md_table(kv))
    if figs["traffic"]:
        w(f"\n![per-device cache traffic vs TP]({figs['traffic']})\n")

    w("\n## 2. Decode latency vs context\n\nMedian step time (µs), one column per variant at its TP degree "
      "(`step_us_median`).\n\n")
    w(md_table(tables.latency_table(rows)))
    if figs["latency"]:
        w(f"\n![latency vs context]({figs['latency']})\n")
    if figs["dist"]:
        w(f"\n![latency distributions]({figs['dist']})\n")

    w("\n## 3. Speedup of MLRA-4\n\nT(variant)/T(MLRA-4) from median step times at the same TP degree and "
      "the same scope, context, batch, layers, width, heads, dtype, threads and timing mode "
      "(> 1: MLRA-4 is faster).\n\n")
    w(md_table(tables.speedup_table(rows)))

    w("\n## 4. Throughput per scope\n\n`tokens_per_s` (tokens/s, summed over the dp replicas as written by "
      "the sweep).\n\n")
    w(md_table(tables.throughput_table(rows)))

    w("\n## 5. Achieved bandwidth, FLOP rate and roofline fraction\n\n")
    w(f"Kernel part of the step. Roofs per rank (medians over rows): read {local.bandwidth_gbs:.2f} GB/s; "
      f"compute peak {local.peak_gflops:.2f} GFLOP/s = {model.PEAK_SOURCE} per row, as in the harness's "
      f"`roofline_us` (sgemm {gflops(rows['calib_sgemm_gflops'].median())}, FMA loop "
      f"{gflops(rows['calib_fma_gflops'].median())} GFLOP/s ({distinct(rows, 'calib_fma_width', 'width not recorded')})); "
      f"ridge {local.ridge:.2f} FLOP/byte. "
      f"Kernel inner loops: {distinct(rows, 'kernel_isa')}. `% peak` = achieved GFLOP/s / that peak; "
      "`roofline_fraction` = roofline bound / measured kernel time (1 = at the roof).\n\n")
    w(md_table(tables.efficiency_table(rows)))
    if figs["roofline"]:
        w(f"\n![roofline]({figs['roofline']})\n")

    w("\n## 6. Strong scaling vs TP degree\n\nSame sequences per TP group, same shape; speedup = T(1)/T(t), "
      "efficiency = T(1)/(t·T(t)), from median step times. Only configurations with a t = 1 row appear.\n\n")
    w(md_table(scaling))
    if figs["scaling"]:
        w(f"\n![scaling vs TP]({figs['scaling']})\n")

    w("\n## 7. All-reduce share of the step (layer and model scope)\n\n")
    w(md_table(tables.allreduce_table(rows)))

    w("\n## 8. Performance model\n\n")
    w("step = max(bytes/BW, FLOPs/peak) + weight bytes/BW + calls·α + 2(t−1)/t·all-reduce bytes/β "
      "(roofline kernel, streamed weights, ring all-reduce; no overlap).\n\n")
    presets = [local, model.H100]
    w(md_table(pd.DataFrame([{"preset": h.name, "BW GB/s": h.bandwidth_gbs, "peak GFLOP/s": h.peak_gflops,
                              "ridge FLOP/B": h.ridge, "α µs": h.ar_latency_us, "β GB/s": h.ar_bandwidth_gbs,
                              "source": h.source} for h in presets])))
    w("\n### 8a. H100: model vs the paper (SPEC §6)\n\n")
    w("Paper: Liu et al., ICLR 2026, arXiv 2603.02188 (`analysis/data/paper_decode_latency.csv`). Model: the "
      "`h100` preset on the paper's per-device shapes (bf16, batch 1; bytes and FLOPs per token from SPEC §4/§5 "
      "in `model.PAPER_SHAPES`). The model is a lower bound; paper/model is the kernels' distance from it.\n\n")
    w(md_table(comparison))
    if figs["paper"]:
        w(f"\n![paper vs model]({figs['paper']})\n")
    w("\n### 8b. Local machine: model vs measurement\n\n")
    w(md_table(tables.model_vs_measured(rows, local)))
    w("\n### 8c. When the MLA family turns compute-bound\n\nPer cached token a block serving H heads costs "
      "H·(4·d_l + 2·d_r) FLOP for (d_l + d_r)·b bytes, so it is compute-bound above "
      "H* = ridge·(d_l + d_r)·b/(4·d_l + 2·d_r) heads per branch.\n\n")
    w(md_table(tables.crossover_table(rows, presets)))
