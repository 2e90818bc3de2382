"""Assemble the Markdown report (and its figures) from merged rows."""

from __future__ import annotations

import math
import numbers
import os

import pandas as pd

from . import figures, model, noise, stats, summary, tables
from .merge import Loaded
from .stats import HI, LO
from .tables import Table

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


def interval_cell(v, lo, hi, threshold: float | None) -> str:
    """"median [lo, hi]", flagged ⚠ when the interval is wider than the threshold."""
    if pd.isna(lo) or pd.isna(hi) or isinstance(v, str):
        return fmt(v)
    flag = " ⚠" if threshold is not None and stats.is_noisy(v, lo, hi, threshold) else ""
    return f"{fmt(v)} [{fmt(lo)}, {fmt(hi)}]{flag}"


def md_table(df: pd.DataFrame, threshold: float | None = None) -> str:
    """A DataFrame as a Markdown table; a column c with c + LO and c + HI beside it is
    one cell "c [lo, hi]" (stats.LO/HI)."""
    if df.empty:
        return "_no rows_\n"
    bounds = {c + LO for c in df.columns} | {c + HI for c in df.columns}
    cols = [c for c in df.columns if c not in bounds]
    paired = {c for c in cols if c + LO in df.columns and c + HI in df.columns}
    head = "| " + " | ".join(md_text(c) for c in cols) + " |"   # pivot columns carry variant names
    sep = "|" + "|".join("---" for _ in cols) + "|"
    body = ["| " + " | ".join(interval_cell(r[c], r[c + LO], r[c + HI], threshold) if c in paired else fmt(r[c])
                              for c in cols) + " |" for _, r in df.iterrows()]
    return "\n".join([head, sep, *body]) + "\n"


def held_fixed_line(fixed: dict) -> str:
    if not fixed:
        return ""
    shown = {c: v for c, v in fixed.items() if not (pd.isna(v) or str(v).strip() == "")}
    if not shown:
        return ""
    return "Held fixed in every row: " + ", ".join(f"`{md_text(c)}` {fmt(v)}" for c, v in shown.items()) + ".\n\n"


def section_table(t: Table, out_dir: str, threshold: float) -> str:
    """A table's Markdown (what it holds fixed, how its intervals were made, the table,
    a link to its CSV, written beside report.md), or the one line saying why it is empty."""
    if t.data.empty:
        return f"_{t.why_empty or 'Nothing to show.'}_\n"   # the analysis's own words
    t.data.to_csv(os.path.join(out_dir, f"{t.name}.csv"), index=False)
    note = f"{t.note}\n\n" if t.note else ""   # the analysis's own words, no CSV text
    return held_fixed_line(t.fixed) + note + md_table(t.data, threshold) + f"\nCSV: [{t.name}.csv]({t.name}.csv)\n"


def plain_table(df: pd.DataFrame, name: str, out_dir: str) -> str:
    """A table without measured times (the model, the paper), and its CSV."""
    return section_table(Table(name, df), out_dir, threshold=math.inf)


def section(title: str, intro: str, *parts: str) -> str:
    """A numbered section: its heading, what it shows, then its tables and figures."""
    return f"\n## {title}\n\n{intro}\n\n" + "".join(parts)


def images(names: list[str], alt: str) -> str:
    return "".join(f"\n![{alt}]({n})\n" for n in names)


def build(loaded: Loaded, out_dir: str, samples: Loaded | None = None, *, baseline: str = "mlra4",
          seed: int = stats.DEFAULT_SEED, resamples: int = stats.RESAMPLES,
          threshold: float = stats.DEFAULT_NOISE_THRESHOLD, noise_reports: list[dict] | None = None) -> str:
    """Write report.md, its tables' CSVs and its figures into out_dir; return the report's path.
    The same input and seed give the same files. noise_reports: the FTQ probe's reports
    (`noise.load_reports`), for section 12."""
    os.makedirs(out_dir, exist_ok=True)
    raw = loaded.rows
    smp = samples.rows if samples is not None else pd.DataFrame()
    iv = stats.Intervals(raw, smp, seed=seed, resamples=resamples, threshold=threshold)
    merged = tables.attach_estimates(tables.collapse_groups(raw), iv)
    # cuda rows (kernel scope on a GPU) are held to a GPU calibration: sections 1-10 (CPU roofs,
    # the CPU performance model) take the cpu rows, section 11 the cuda rows.
    on_gpu = merged["device"] == "cuda"
    rows, gpu_rows = merged[~on_gpu].reset_index(drop=True), merged[on_gpu].reset_index(drop=True)
    has_cpu = not rows.empty
    if has_cpu:
        paper_lat, paper_kv = load_paper()
        local = model.local_preset(rows)
        presets = [local, model.H100]
        kv = tables.kv_table(rows, paper_kv)
        layout_times, layout_ratios, layout_missing = tables.paper_layout(rows, iv, paper_lat)
        latency = tables.latency_table(rows, iv)
        speedup = tables.speedup_table(rows, iv, baseline)
        throughput = tables.throughput_table(rows, iv)
        efficiency = tables.efficiency_table(rows, raw, iv)
        scaling = tables.scaling_table(rows, iv)
        allreduce = tables.allreduce_table(rows, iv)
        measured = tables.model_vs_measured(rows, local, iv)
        comparison = tables.paper_comparison(paper_lat, model.H100)
        opening = summary.sentences(rows, iv, baseline, layout_ratios, scaling, allreduce)
        noisy_medians, noisy_ratios = tables.noisy_tables(rows, iv)   # last: every ratio is computed by now
        figs = {
            "layout": figures.paper_layout(layout_times, layout_ratios, paper_lat, out_dir),
            "latency": figures.latency_vs_context(latency, out_dir),
            "traffic": figures.cache_traffic_vs_tp(rows, out_dir),
            "roofline": figures.roofline(rows, out_dir),
            "scaling": figures.scaling_vs_tp(scaling, out_dir),
            "dist": figures.latency_distributions(smp, out_dir),
            "paper": figures.paper_vs_model(comparison, out_dir),
        }
    warnings = loaded.warnings + (samples.warnings if samples is not None else [])

    def table(t: Table) -> str:
        return section_table(t, out_dir, threshold)
    base = md_text(tables.label(baseline))
    out = []
    w = out.append
    w("# MLRA decode sweep report\n\n")
    dates = pd.to_datetime(raw["date_utc"], errors="coerce", utc=True).dropna()
    span = f", measured {dates.min():%Y-%m-%d %H:%M} to {dates.max():%Y-%m-%d %H:%M} UTC" if len(dates) else ""
    w(f"From {len(loaded.files)} file(s), {len(raw)} usable row(s) "
      f"({len(rows)} configuration(s) after merging TP groups, repeats and reruns){span}.\n")

    w("\n## Summary\n\n")
    quiet = noise.quiet_sentence(noise_reports or [], threshold)
    w(" ".join(md_text(x) for x in (opening if has_cpu else ["Only GPU (cuda) rows: see section 11."]) + ([quiet] if quiet else []))
      + "\n")

    hosts = md_text(", ".join(sorted(map(str, raw["host"].dropna().unique()))))
    revs = md_text(", ".join(sorted(map(str, raw["git_rev"].dropna().unique()))))
    vers = md_text(", ".join(sorted(map(str, raw["harness_version"].dropna().unique()))))
    mpis = md_text("; ".join(sorted(map(str, raw["mpi_library"].dropna().unique()))))
    w("\n## Input\n\n")
    w(f"- hosts: {hosts or '–'}\n- harness: {vers or '–'} (git {revs or '–'})\n- MPI: {mpis or '–'}\n"
      f"- timing modes: {md_text(', '.join(sorted(map(str, raw['timing_mode'].unique()))))}; "
      f"cold cache: {md_text(', '.join(sorted(map(str, raw['cold_cache'].unique()))))}\n"
      f"- kernel ISA (`kernel_isa`): {distinct(raw, 'kernel_isa', '– (schema-1 rows)')}; "
      f"FMA peak loop (`calib_fma_width`): {distinct(raw, 'calib_fma_width', '– (schema-1 rows)')}; "
      f"products (`kernel_math`): {distinct(raw, 'kernel_math')}\n")
    # File names as escaped text, not code spans: a backtick in a name would end the span.
    w("\nFiles: " + ", ".join(md_text(f) for f in loaded.files) + "\n")
    if samples is not None:
        w("\nSamples files: " + ", ".join(md_text(f) for f in samples.files) +
          f" ({len(smp)} samples, {iv.linked_samples} of them linked to a row)\n")
    for n in loaded.notes:
        w(f"- {md_text(n)}\n")
    if warnings:
        w(f"\n**{len(warnings)} warning(s): rows or files that could not be used in full**\n\n")
        for x in warnings:
            w(f"- ⚠ {md_text(x)}\n")
    else:
        w("\nNo warnings: every row was usable.\n")
    w("\n### How the numbers are made\n\n")
    w(f"Every time is the median over a configuration's TP groups, repeats and reruns of each one's median step, "
      f"with a 95% confidence interval `median [lo, hi]`: bootstrap over repeats and steps ({iv.resamples} "
      f"resamples, seed {iv.seed}, `--seed`), from the per-step samples (`--samples`) where given, else from each "
      f"row's percentiles. Every ratio is bootstrapped as a ratio. ⚠ marks an interval wider than "
      f"±{100 * threshold:g}% of its median (`--noise-threshold`); section 10 lists them. Each table says what "
      f"it holds fixed and is written as CSV beside this file (value, `… lo` and `… hi` columns).\n")

    if has_cpu:
        w("\n## 1. Per-device KV cache per token vs TP degree\n\n")
        w("Cache elements and bytes per token per layer on the busiest rank (columns `kv_elems_per_token`, "
          "`kv_bytes_per_token`). Checked: elems × dtype bytes = bytes; the method §4 plan recomputed from the shape "
          "columns (`plan_elems`); `kernel_bytes_per_step` = bytes × context × sequences per group × layers; and the "
          "paper's Table 1 (`paper_in_d_h`, in units of d_h = 128) where the shape is the paper's "
          "(h 64, d_h 128, d_r 64, d_c 512, GQA n_kv 8).\n\n")
        bad = kv["check"] != "ok"
        w(f"**{int(bad.sum())} disagreement(s) flagged.**\n\n" if bad.any() else "All checks agree.\n\n")
        w(plain_table(kv, "kv_cache", out_dir))
        w(images(figs["traffic"], "per-device cache traffic vs TP"))

        w("\n## 2. The paper's layout: each variant at its paper TP degree\n\n")
        w("MLA t=1 (any dp), GLA-2 t=2, MLRA-4 t=4, GQA t=8 (method §6), side by side at the same work per TP group "
          "and context; the time is the kernel part of the step (max over the group's ranks), one device's share as "
          f"in the paper. {md_text(layout_missing)}\n\n")
        w(table(layout_times))
        w("\nThe ratios T(variant)/T(MLRA-4) measured, beside the ratios the rows' own bytes "
          "(`kernel_bytes_per_step`) and FLOPs (`kernel_flops_per_step`) predict, the roofline's (`roofline_us`, the "
          "rows' calibration) and the paper's at its nearest context (`paper L`).\n\n")
        w(table(layout_ratios))
        w(images(figs["layout"], "the paper's layout"))

        w(section("3. Decode latency vs context", "Median step time (µs), one column per layout, at the same work "
                  "per TP group in every row (`seqs_per_group`, never the global batch).",
                  table(latency), images(figs["latency"], "latency vs context"),
                  images(figs["dist"], "latency distributions")))
        w(section(f"4. Speedup of {base}", f"T(variant)/T({base}) of the step (`--baseline`), at the same TP layout "
                  f"(t and dp), context and work (> 1: {base} is faster).", table(speedup)))
        w(section("5. Throughput at the same global batch", "`job_tokens_per_s` (tokens/s, summed over the dp replicas as "
                  "written by the sweep); each row compares the layouts (t × dp) that decode the same global batch on "
                  "the same number of ranks. Interval: the step time's, inverted.", table(throughput)))
        w("\n## 6. Achieved bandwidth, FLOP rate and roofline fraction\n\n")
        w(f"Kernel part of the step. Roofs per rank (medians over rows): read {local.bandwidth_gbs:.2f} GB/s; "
          f"compute peak {local.peak_gflops:.2f} GFLOP/s = {model.PEAK_SOURCE} per row, as in the harness's "
          f"`roofline_us` (sgemm {gflops(rows['calib_sgemm_gflops'].median())}, FMA loop "
          f"{gflops(rows['calib_fma_gflops'].median())} GFLOP/s ({distinct(rows, 'calib_fma_width', 'width not recorded')})); "
          f"ridge {local.ridge:.2f} FLOP/byte. "
          f"Kernel inner loops: {distinct(rows, 'kernel_isa')}. `% peak` = achieved GFLOP/s / that peak; "
          "`roofline_fraction` = roofline bound / measured kernel time (1 = at the roof). `check` holds each row's "
          "rates against its own bytes, FLOPs and time, TP group by TP group.\n\n")
        w(table(efficiency))
        w(images(figs["roofline"], "roofline"))

        w(section("7. Strong scaling vs TP degree", "The work per TP group fixed (sequences per group, context, "
                  "shape); speedup = T(1)/T(t), efficiency = speedup/t, bootstrapped from the step times. Where several "
                  "t = 1 rows fit, T(1) is the one with the fewest concurrent groups (smallest dp).",
                  table(scaling), images(figs["scaling"], "scaling vs TP")))
        w(section("8. All-reduce share of the step (layer and model scope)", "`share %` = all-reduce time / step time; "
                  "`busbw GB/s` = algbw·2(t−1)/t with algbw = `allreduce_bytes_per_step` / all-reduce time (layer scope "
                  "only: in model scope the time also holds the logits all-gather, whose bytes the CSV does not "
                  "record).", table(allreduce)))

        w("\n## 9. Performance model\n\n")
        w("step = max(bytes/BW, FLOPs/peak) + weight bytes/BW + calls·α + 2(t−1)/t·all-reduce bytes/β "
          "(roofline kernel, streamed weights, ring all-reduce; no overlap).\n\n")
        w(plain_table(pd.DataFrame([{"preset": h.name, "BW GB/s": h.bandwidth_gbs, "peak GFLOP/s": h.peak_gflops,
                                     "ridge FLOP/B": h.ridge, "α µs": h.ar_latency_us, "β GB/s": h.ar_bandwidth_gbs,
                                     "source": h.source} for h in presets]), "model_presets", out_dir))
        w("\n### 9a. H100: model vs the paper (method §6)\n\n")
        w("Paper: Liu et al., ICLR 2026, arXiv 2603.02188 (`analysis/data/paper_decode_latency.csv`). Model: the "
          "`h100` preset on the paper's per-device shapes (bf16, batch 1; bytes and FLOPs per token from method §4/§5 "
          "in `model.PAPER_SHAPES`). The model is a lower bound; paper/model is the kernels' distance from it.\n\n")
        w(plain_table(comparison, "paper_vs_model", out_dir))
        w(images(figs["paper"], "paper vs model"))
        w("\n### 9b. Local machine: model vs measurement\n\n")
        w(table(measured))
        w("\n### 9c. When the MLA family turns compute-bound\n\nPer cached token a block serving H heads costs "
          "H·(4·d_l + 2·d_r) FLOP for (d_l + d_r)·b bytes, so it is compute-bound above "
          "H* = ridge·(d_l + d_r)·b/(4·d_l + 2·d_r) heads per branch.\n\n")
        w(plain_table(tables.crossover_table(rows, presets), "crossover", out_dir))

        w(f"\n## 10. Noisy measurements\n\nMedians and ratios whose 95% interval is wider than ±{100 * threshold:g}% "
          "of the value, with the p10 and p90 of their steps: rerun them (more `--steps`, a quieter machine) before "
          "drawing conclusions from them.\n\n")
        w(section_table(noisy_medians, out_dir, math.inf))
        w("\n")
        w(section_table(noisy_ratios, out_dir, math.inf))
    if not gpu_rows.empty:
        w("\n## 11. GPU kernel rows (device cuda)\n\n")
        w("Kernel scope on each rank's GPU. `step_us_median`: a step with its kernels launched from the host; "
          "`kernel_us_median`: the same step replayed from a CUDA graph (launch = the difference). The roofline "
          "is the row's own, held to the GPU calibration named by `calib_source` (read "
          "`gpu_calib_read_gbs`; tensor-core peak for 16-bit caches, FMA peak for f32).\n\n")
        w(plain_table(tables.gpu_table(gpu_rows), "gpu_kernels", out_dir))
    w(noise_section(raw, smp, noise_reports or [], quiet, out_dir))
    path = os.path.join(out_dir, "report.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(out))
    return path


def noise_section(raw: pd.DataFrame, smp: pd.DataFrame, reports: list[dict], quiet: str, out_dir: str) -> str:
    """Section 12: what the FTQ noise probe found on the nodes (the rows' summary columns,
    the probe reports given with --noise and their spectra) and which configurations'
    steps are dominated by one periodic component."""
    probed = raw[["run_id", "host", *noise.NOISE_ROW_COLUMNS]].copy()
    probed = probed[pd.to_numeric(probed["noise_cv_max"], errors="coerce").notna()].drop_duplicates()
    periodic = noise.periodic_steps(smp)
    if probed.empty and not reports and periodic.empty:
        return ("\n## 12. Node noise\n\n_No noise probe in these rows (swept with --no-noise-probe, or before schema 5), no "
                "probe report given (--noise), and no samples file with periodic steps._\n")
    parts = []
    if not probed.empty:
        parts.append("Per run, the probe's worst rank as recorded in the rows (`noise_cv_max`, `noise_lost_fraction_max`, "
                     "`noise_top_hz`):\n\n" + plain_table(probed.reset_index(drop=True), "noise_per_run", out_dir))
    if reports:
        parts.append(f"\n{md_text(quiet)}\n\nEvery rank of the probe reports ({len(reports)} file(s)):\n\n"
                     + plain_table(noise.probe_table(reports), "noise_probe", out_dir)
                     + images(figures.noise_spectra(reports, out_dir), "noise probe spectra"))
    what = (f"Configurations whose per-step times have one frequency holding at least {100 * noise.PERIODIC_SHARE:g}% "
            f"of their variance (periodogram of the steps in order; runs whose configurations have fewer than "
            f"{noise.MIN_STEPS} steps are taken together):\n\n")
    if smp.empty:
        parts.append("\n_No samples file (--samples): the per-step periodicity is not checked._\n")
    else:
        parts.append("\n" + what + (plain_table(periodic, "periodic_steps", out_dir) if not periodic.empty else
                                     "_No configuration's steps are dominated by a periodic component._\n"))
    return section("12. Node noise", "The FTQ probe (`mlra noise`, and the sweep before it measures) counts fixed work "
                   "in fixed 100 µs quanta on every rank at once; a quiet core does the same work in each.", *parts)
