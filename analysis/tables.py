"""The report's tables, each a `Table`: a pandas DataFrame computed from merged rows,
what every row of it holds fixed, and, when it has nothing to show, why.

Rows of one configuration (merge.MEASUREMENT_KEY) measured by several TP groups,
repeats or reruns are collapsed to one (`collapse_groups`); its times are the
bootstrap medians and 95% intervals of stats.Intervals, in the columns `step µs`
and `kernel µs` with their `… lo` and `… hi` (`attach_estimates`).

Like for like: two measurements stand side by side (one table row, or one ratio)
only when they agree on SAME_WORK, which has the sequences per TP group rather than
the global batch, so MLA at t = 1 with one sequence per group is set beside
MLRA-4 at t = 4 with one sequence, never beside a t = 4 job decoding four.
Throughput is the exception: it compares layouts at the same global batch."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import model
from .merge import MEASUREMENT_KEY
from .stats import HI, LO, Estimate, Intervals, add_columns, as_text

LABEL = {"mha": "MHA", "mqa": "MQA", "gqa": "GQA", "mla": "MLA", "gla2": "GLA-2",
         "mlra2": "MLRA-2", "mlra4": "MLRA-4"}
ORDER = ["mha", "mqa", "gqa", "mla", "gla2", "mlra2", "mlra4"]
# Paper's Table 1 shape (method §4).
PAPER_SHAPE = dict(n_head=64, head_dim=128, rope_dim=64, kv_lora_rank=512)
PAPER_KV_HEADS = {"mha": 64, "gqa": 8}
# A variant's own shape (the paper matches parameter counts with a per-variant FFN
# width) and its parallel layout: these differ between the things a table compares.
SHAPE = ["head_dim", "rope_dim", "kv_lora_rank", "q_lora_rank", "block_width", "kv_heads",
         "intermediate_size", "vocab_size"]
LAYOUT = ["variant", "tp", "dp", "world_size", "batch"]
# Everything else in the resume key must agree, with the work per TP group in place of
# the global batch (see the module docstring).
SAME_WORK = [c for c in MEASUREMENT_KEY if c not in SHAPE + LAYOUT + ["context"]] + ["seqs_per_group"]
STEP, KERNEL = "step µs", "kernel µs"


@dataclass
class Table:
    name: str                                   # stem of the CSV written beside report.md
    data: pd.DataFrame
    fixed: dict = field(default_factory=dict)   # column → the one value all its rows share
    note: str = ""                              # how the intervals were made, and other caveats
    why_empty: str = ""                         # one line when there is nothing to show


def tokens_text(n) -> str:
    """A token count as the paper writes it: 1K = 1024, 1M = 1024²; others as they are."""
    if pd.isna(n):
        return "–"
    n = int(n)
    for unit, size in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def variant_key(v: str) -> int:
    return ORDER.index(v) if v in ORDER else len(ORDER)


def label(v: str) -> str:
    return LABEL.get(v, v)


def collapse_groups(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: numeric columns the median over its rows (TP groups,
    repeats, reruns), text the first; `groups` and `units` count what was merged."""
    key = MEASUREMENT_KEY
    num = rows.select_dtypes("number").columns.difference(key)
    agg = {c: "median" for c in num}
    agg.update({c: "first" for c in rows.columns if c not in num and c not in key})
    by = rows.groupby(key, dropna=False, sort=False)
    out = by.agg(agg).reset_index()
    out["groups"] = by["tp_group"].nunique(dropna=False).to_numpy()
    out["units"] = by.size().to_numpy()
    return out


def attach_estimates(rows: pd.DataFrame, iv: Intervals) -> pd.DataFrame:
    """rows with `step µs` and `kernel µs`, each a bootstrap median with its interval."""
    rows = rows.copy()
    add_columns(rows, STEP, [iv.of(c, "step") for c in rows["_config"]])
    return add_columns(rows, KERNEL, [iv.of(c, "kernel") for c in rows["_config"]])


def held_fixed(rows: pd.DataFrame, cols: list[str], keep: tuple[str, ...] = ("scope",)) -> tuple[dict, list[str]]:
    """The columns of `cols` with one value in all rows (for the table's header), and
    the others, which the table must show (`keep` is always shown)."""
    fixed, varying = {}, []
    for c in cols:
        vals = rows[c].drop_duplicates() if c in rows else pd.Series(dtype=object)
        if c not in keep and len(vals) == 1:
            fixed[c] = vals.iloc[0]
        elif c in rows:
            varying.append(c)
    return fixed, varying


def interval_source(iv: Intervals, cids, metric: str = "step") -> str:
    """One sentence: where the intervals of these configurations come from."""
    srcs = pd.Series([iv.of(c, metric).source for c in cids]).replace("", np.nan).dropna()
    counts = srcs.value_counts()
    what = {"samples": "the per-step samples (`--samples`)",
            "percentiles": "the rows' percentiles (min, p10, median, p90, max; no samples for them)"}
    parts = [f"{what.get(s, s)} for {n}" for s, n in counts.items()]
    if not parts:
        return "No intervals: the rows hold no spread to bootstrap."
    if len(parts) == 1:
        return f"95% intervals: bootstrap over repeats and steps, from {what.get(counts.index[0], counts.index[0])}."
    return "95% intervals: bootstrap over repeats and steps, from " + "; ".join(parts) + " configurations."


def layout_labels(rows: pd.DataFrame, with_dp: bool = False) -> pd.Series:
    """Column label of each row's layout, "MLA t=1"; with " dp=4" where the variant and
    t were measured at several dp (or `with_dp`), and the shape where a variant has several."""
    shapes = rows.apply(_shape, axis=1)
    out = []
    for i, r in rows.iterrows():
        same = rows[(rows["variant"] == r["variant"]) & (rows["tp"] == r["tp"])]
        text = f"{label(r['variant'])} t={_whole(r['tp'])}"
        if with_dp or same["dp"].nunique() > 1:
            text += f" dp={_whole(r['dp'])}"
        if shapes[rows["variant"] == r["variant"]].nunique() > 1:
            text += f" ({shapes[i]})"
        out.append(text)
    return pd.Series(out, index=rows.index, dtype=object)


def _layout_order(rows: pd.DataFrame, labels: pd.Series) -> list[str]:
    order = rows.assign(_l=labels, _v=rows["variant"].map(variant_key)).sort_values(["_v", "tp", "dp"])
    return order["_l"].drop_duplicates().tolist()


def _sorted(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df.sort_values(by, kind="stable", na_position="last").reset_index(drop=True) if len(df) else df


def wide(rows: pd.DataFrame, value: str, index: list[str], with_dp: bool = False) -> pd.DataFrame:
    """One row per `index`, one column (with its interval columns) per layout. Built
    by hand, not with pivot_table, so an empty (refused) index cell keeps its row."""
    labels = layout_labels(rows, with_dp)
    cols = _layout_order(rows, labels)
    recs = []
    for key, g in rows.assign(_col=labels).groupby(index, dropna=False, sort=False):
        rec = dict(zip(index, key if isinstance(key, tuple) else (key,)))
        for _, r in g.iterrows():
            if r["_col"] not in rec:   # one configuration per cell; labels tell them apart
                rec.update({r["_col"] + sfx: r[value + sfx] for sfx in ("", LO, HI)})
        recs.append(rec)
    return _sorted(pd.DataFrame(recs, columns=index + [c + sfx for c in cols for sfx in ("", LO, HI)]), index)


def latency_table(rows: pd.DataFrame, iv: Intervals) -> Table:
    """Median step time against context, one column per layout, rows of equal work."""
    fixed, varying = held_fixed(rows, SAME_WORK)
    return Table("latency", wide(rows, STEP, varying + ["context"]), fixed, interval_source(iv, rows["_config"]))


def throughput_table(rows: pd.DataFrame, iv: Intervals) -> Table:
    """tokens/s of each layout (t and dp) at the same global batch and number of ranks.
    Its interval is the step time's, inverted: tokens/s = batch / step time."""
    df = rows.copy()
    df["tokens/s"] = df["job_tokens_per_s"]
    df["tokens/s" + LO] = df["job_tokens_per_s"] * df[STEP] / df[STEP + HI]
    df["tokens/s" + HI] = df["job_tokens_per_s"] * df[STEP] / df[STEP + LO]
    cols = [c for c in SAME_WORK if c != "seqs_per_group"] + ["batch", "world_size"]
    fixed, varying = held_fixed(df, cols)
    return Table("throughput", wide(df, "tokens/s", varying + ["context"], with_dp=df["dp"].nunique() > 1), fixed,
                 interval_source(iv, rows["_config"]))


def key_text(r, key: list[str]) -> tuple:
    """A row's values of key as comparable text (4.0 and 4 alike; empty cells alike)."""
    return tuple(as_text(r[c]) for c in key)


def matches(rows: pd.DataFrame, key: list[str]) -> dict[tuple, pd.DataFrame]:
    """rows grouped by their key_text: the rows that agree with a row on every column of key."""
    texts = [key_text(r, key) for _, r in rows.iterrows()]
    return {k: rows.loc[[i for i, t in zip(rows.index, texts) if t == k]] for k in dict.fromkeys(texts)}


def _ratio_columns(rec: dict, name: str, e: Estimate) -> None:
    rec.update({name: e.median, name + LO: e.lo, name + HI: e.hi})


def describe(r, cols: list[str]) -> str:
    """A configuration in words for a ratio's label: "MLA t=2 kernel L=1024 …"."""
    def plain(v):
        return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    parts = [f"{label(r['variant'])} t={_whole(r['tp'])}"] + [f"{c}={plain(r[c])}" for c in cols if c in r]
    return " ".join(parts)


def speedup_table(rows: pd.DataFrame, iv: Intervals, baseline: str = "mlra4") -> Table:
    """T(variant)/T(baseline) of the step, with bootstrap intervals, at the same TP
    layout, context and work (> 1: the baseline is faster)."""
    base_name = label(baseline)
    base = rows[rows["variant"] == baseline]
    if base.empty:
        return Table("speedup", pd.DataFrame(), why_empty=f"No {base_name} rows: nothing to divide by "
                                                          f"(`--baseline {baseline}`).")
    key = SAME_WORK + ["tp", "dp", "context"]
    others = sorted(set(rows["variant"]) - {baseline}, key=variant_key)
    fixed, varying = held_fixed(base, SAME_WORK)
    recs, found = [], False
    same = matches(rows, key)
    for _, b in base.iterrows():
        rec = {c: b[c] for c in varying + ["tp", "dp", "context"]}
        _ratio_columns(rec, f"{base_name} µs", Estimate(b[STEP], b[STEP + LO], b[STEP + HI]))
        for v in others:
            hit = same[key_text(b, key)]
            hit = hit[hit["variant"] == v]
            e = Estimate(math.nan)
            if len(hit):
                found = True
                e = iv.ratio(hit["_config"].iloc[0], b["_config"], "step",
                             label=f"{label(v)}/{base_name} step, " + describe(b, varying + ['context']))
            _ratio_columns(rec, f"{label(v)}/{base_name}", e)
        recs.append(rec)
    if not found:
        return Table("speedup", pd.DataFrame(), why_empty=f"No other variant was measured at the same TP layout, "
                                                          f"context and work as {base_name}.")
    data = _sorted(pd.DataFrame(recs), varying + ["tp", "dp", "context"])
    if data["dp"].nunique() == 1:
        fixed["dp"] = data["dp"].iloc[0]
        data = data.drop(columns=[c for c in data if c == "dp"])
    return Table("speedup", data, fixed, interval_source(iv, base["_config"]))


def _rate_checks(raw: pd.DataFrame) -> pd.Series:
    """Per configuration (`_config`): the CSV's rates against its own bytes, FLOPs and
    kernel time, checked row by row, each TP group and repeat against itself (their
    medians need not agree with each other's), and the roof."""
    gbs = raw["kernel_bytes_per_step"] / raw["kernel_us_median"] / 1e3
    gfl = raw["kernel_flops_per_step"] / raw["kernel_us_median"] / 1e3
    problems = pd.Series([[] for _ in raw.index], index=raw.index, dtype=object)
    for i in raw.index:
        if not np.isclose(gbs[i], raw.at[i, "achieved_gbs"], rtol=1e-3):
            problems[i].append(f"GB/s ≠ bytes/time ({gbs[i]:.4g})")
        if not np.isclose(gfl[i], raw.at[i, "achieved_gflops"], rtol=1e-3):
            problems[i].append(f"GFLOP/s ≠ FLOPs/time ({gfl[i]:.4g})")
        if raw.at[i, "roofline_fraction"] > 1.05:
            problems[i].append("**faster than the measured roof**")

    def summary(g: pd.Series) -> str:
        seen = [p for ps in g for p in ps]
        if not seen:
            return "ok"
        distinct = list(dict.fromkeys(seen))
        text = "; ".join(distinct)
        bad = sum(1 for ps in g if ps)
        return text if len(g) == 1 else f"{text} (in {bad} of {len(g)} rows)"
    return problems.groupby(raw["_config"], sort=False).agg(summary)


def efficiency_table(rows: pd.DataFrame, raw: pd.DataFrame, iv: Intervals) -> Table:
    """Achieved bandwidth and FLOP rate of the kernel, against the measured roofs: read
    bandwidth and the compute peak max(sgemm, FMA) of `model.compute_peak_gflops`, as in
    the harness's roofline_us."""
    df = rows.copy()
    df["intensity"] = df["kernel_flops_per_step"] / df["kernel_bytes_per_step"]
    df["% read BW"] = 100 * df["achieved_gbs"] / df["calib_read_gbs"]
    peak = model.compute_peak_gflops(df)
    df["% peak"] = 100 * df["achieved_gflops"] / peak
    ridge = peak / df["calib_read_gbs"]
    df["bound"] = np.where(df["intensity"] > ridge, "compute", "bandwidth")
    df["check"] = df["_config"].map(_rate_checks(raw)).fillna("ok")
    df["variant"] = df["variant"].map(label)
    fixed, varying = held_fixed(df, SAME_WORK + ["dp"])
    cols = varying + ["variant", "tp", "context", KERNEL, KERNEL + LO, KERNEL + HI, "intensity",
                      "achieved_gbs", "% read BW", "achieved_gflops", "% peak", "roofline_fraction", "bound", "check"]
    data = df[cols].rename(columns={"intensity": "FLOP/byte", "achieved_gbs": "GB/s", "achieved_gflops": "GFLOP/s"})
    return Table("efficiency", data.reset_index(drop=True), fixed, interval_source(iv, rows["_config"], "kernel"))


def scaling_table(rows: pd.DataFrame, iv: Intervals) -> Table:
    """Strong scaling: the same work per TP group (sequences per group, context, shape)
    on t ranks. speedup = T(1)/T(t) and efficiency = speedup/t, with bootstrap intervals.
    Where several t = 1 rows fit (dp = 1 and dp = 4 at one sequence per group), the one
    with the fewest concurrent groups is T(1)."""
    key = ["variant"] + SAME_WORK + SHAPE + ["context"]
    fixed, varying = held_fixed(rows, SAME_WORK + ["dp"])
    recs = []
    same = matches(rows[rows["tp"] == 1], key)
    for _, r in rows.iterrows():
        one = same.get(key_text(r, key), rows.iloc[:0]).sort_values("dp")
        if one.empty:
            continue
        t1 = one.iloc[0]
        e = iv.ratio(t1["_config"], r["_config"], "step",
                     label=f"T(1)/T(t) step, " + describe(r, varying + ["context"]))
        rec = {c: r[c] for c in varying + ["variant", "context", "tp"]}
        _ratio_columns(rec, STEP, Estimate(r[STEP], r[STEP + LO], r[STEP + HI]))
        _ratio_columns(rec, "speedup", e)
        _ratio_columns(rec, "efficiency", Estimate(e.median / r["tp"], e.lo / r["tp"], e.hi / r["tp"]))
        rec["_v"] = variant_key(r["variant"])
        recs.append(rec)
    if not recs or all(rec["tp"] == 1 for rec in recs):
        return Table("scaling", pd.DataFrame(), why_empty="No configuration was measured at t = 1 and at a t > 1 "
                                                          "with the same work per TP group (sequences per group, "
                                                          "context, shape).")
    df = _sorted(pd.DataFrame(recs), varying + ["_v", "context", "tp"]).drop(columns="_v")
    df["variant"] = df["variant"].map(label)
    return Table("scaling", df, fixed, interval_source(iv, rows["_config"]))


def allreduce_table(rows: pd.DataFrame, iv: Intervals) -> Table:
    """The collective's share of the step, its imbalance where the CSV separates it,
    and its bus bandwidth algbw·2(t−1)/t where the message size is known (layer scope:
    allreduce_bytes_per_step are all the bytes it moves; in model scope the time also
    holds the logits all-gather, whose bytes the CSV does not record)."""
    df = rows[rows["scope"].isin(["layer", "model"]) & (rows["tp"] > 1) & rows["allreduce_us_median"].notna()].copy()
    if df.empty:
        return Table("allreduce", pd.DataFrame(), why_empty="No layer- or model-scope rows at t > 1 with an "
                                                            "all-reduce time: no collective to show.")
    split = df["imbalance_us_median"].notna().any()
    add_columns(df, "AR µs", [iv.of(c, "allreduce") if iv.of(c, "allreduce").units else
                              Estimate(m) for c, m in zip(df["_config"], df["allreduce_us_median"])])
    df["share %"] = 100 * df["AR µs"] / df[STEP]
    df["imbalance µs"] = df["imbalance_us_median"]
    df["imbalance %"] = 100 * df["imbalance_us_median"] / df[STEP]
    algbw = df["allreduce_bytes_per_step"] / df["AR µs"] / 1e3
    df["busbw GB/s"] = (algbw * 2 * (df["tp"] - 1) / df["tp"]).where(df["scope"] == "layer")
    df["variant"] = df["variant"].map(label)
    fixed, varying = held_fixed(df, SAME_WORK + ["dp"])
    cols = varying + ["variant", "tp", "context", "allreduce_bytes_per_step", "allreduce_count_per_step",
                      "AR µs", "AR µs" + LO, "AR µs" + HI, "share %"] + \
        (["imbalance µs", "imbalance %"] if split else []) + ["busbw GB/s", STEP, STEP + LO, STEP + HI]
    data = df[cols].rename(columns={"allreduce_bytes_per_step": "AR bytes", "allreduce_count_per_step": "AR calls"})
    what = ("`allreduce_us_median` is the collective alone; `imbalance_us_median`, the wait for the slowest rank, "
            "is beside it." if split else
            "The CSV has no `imbalance_us_median`: `allreduce_us_median` holds the collective and the wait for the "
            "slowest rank together, so the share and the bus bandwidth are upper and lower bounds.")
    ar_src = "AR µs intervals need the per-step samples (`--samples`); without them only its median is shown."
    return Table("allreduce", _sorted(data, varying + ["variant", "tp", "context"]), fixed,
                 f"{what} {interval_source(iv, df['_config'])} {ar_src}")


def model_vs_measured(rows: pd.DataFrame, hw: model.Hardware, iv: Intervals) -> Table:
    pred = model.predict_rows(rows, hw)
    df = rows.assign(pred_kernel=pred["kernel_us"], pred_step=pred["step_us"], bound=pred["bound"])
    for sfx in ("", LO, HI):
        df["measured/model" + sfx] = df[STEP + sfx] / df["pred_step"]
    df["variant"] = df["variant"].map(label)
    fixed, varying = held_fixed(df, SAME_WORK + ["dp"])
    data = df[varying + ["variant", "tp", "context", "pred_kernel", "kernel_us_median", "pred_step",
                         STEP, STEP + LO, STEP + HI, "measured/model", "measured/model" + LO,
                         "measured/model" + HI, "bound"]].rename(
        columns={"pred_kernel": "model kernel µs", "kernel_us_median": "kernel µs (median)",
                 "pred_step": "model step µs"}).reset_index(drop=True)
    return Table("model_vs_measured", data, fixed, interval_source(iv, rows["_config"]))


# ---- the paper's layout (method §6): each variant at its paper TP degree --------------

PAPER_TP = {v: s["tp"] for v, s in model.PAPER_SHAPES.items()}
PAPER_RATIOS = ["mla", "gqa"]   # numerators; MLRA-4 is the denominator, as in the paper


def _ridge(r) -> float:
    return float(model.compute_peak_gflops(pd.DataFrame([r])).iloc[0] / r["calib_read_gbs"])


def _bound(r) -> tuple[str, float, float]:
    """("compute" | "bandwidth" | "unknown", FLOP/byte, ridge) of a row's kernel."""
    ai = r["kernel_flops_per_step"] / r["kernel_bytes_per_step"]
    ridge = _ridge(r)
    if not (np.isfinite(ai) and np.isfinite(ridge)):
        return "unknown", ai, ridge
    return ("compute" if ai > ridge else "bandwidth"), ai, ridge


def reading(name: str, e: Estimate, num, den, by_bytes: float, by_flops: float) -> str:
    """One sentence: which prediction the measured ratio e of rows num/den follows, and
    why, from the roofline of the two rows' own calibration."""
    (bn, ain, ridge), (bd, aid, _) = _bound(num), _bound(den)
    if not np.isfinite(e.median):
        return f"{name}: no measurement."
    near, far = ("bytes", by_bytes), ("FLOPs", by_flops)
    if abs(math.log(e.median / by_flops)) < abs(math.log(e.median / by_bytes)):
        near, far = far, near
    if np.isclose(by_bytes, by_flops, rtol=0.02):
        verdict = f"bytes and FLOPs both predict {by_bytes:.2f}×"
    elif abs(math.log(e.median / near[1])) > math.log(1.5):
        verdict = f"follows neither the bytes ({by_bytes:.2f}×) nor the FLOPs ({by_flops:.2f}×)"
    else:
        verdict = f"follows the {near[0]} ({near[1]:.2f}×) rather than the {far[0]} ({far[1]:.2f}×)"
    n, d = label(num["variant"]), label(den["variant"])
    if "unknown" in (bn, bd):
        why = "the rows carry no calibration to say which roof binds"
    elif bn == bd:
        expect = "FLOPs" if bn == "compute" else "bytes"
        why = (f"both kernels are {bn}-bound here ({n} {ain:.3g}, {d} {aid:.3g} FLOP/byte; ridge {ridge:.3g}), "
               f"so the roofline expects the {expect}")
    else:
        why = (f"{n} is {bn}-bound ({ain:.3g} FLOP/byte) and {d} {bd}-bound ({aid:.3g}; ridge {ridge:.3g}), "
               f"so the roofline expects {num['roofline_us'] / den['roofline_us']:.2f}×")
    return f"{name} = {e.median:.3g} [{e.lo:.3g}, {e.hi:.3g}] {verdict}: {why}."


def paper_layout(rows: pd.DataFrame, iv: Intervals, paper: pd.DataFrame) -> tuple[Table, Table, str]:
    """(per-device times, ratios, missing layouts): each variant at its paper TP degree
    (MLA t=1 with any dp, GLA-2 t=2, MLRA-4 t=4, GQA t=8), at the same work per TP group
    and context. Times are the kernel part (max over ranks), the paper's measure. The
    ratios MLA/MLRA-4 and GQA/MLRA-4 beside what the rows' bytes and FLOPs predict and
    the paper's ratio at the nearest of its contexts."""
    at = rows[[PAPER_TP.get(v) == t for v, t in zip(rows["variant"], rows["tp"])]]
    missing = []
    for v in ["mla", "gla2", "mlra4", "gqa"]:
        if not (at["variant"] == v).any():
            have = sorted(int(t) for t in rows.loc[rows["variant"] == v, "tp"].dropna().unique())
            missing.append(f"{label(v)} t={PAPER_TP[v]}" + (f" (measured at t = {', '.join(map(str, have))})"
                                                            if have else " (not measured)"))
    missing_text = ("Missing: " + "; ".join(missing) + ".") if missing else "Every paper layout was measured."
    if at.empty:
        why = "No row is at a paper TP degree (MLA t=1, GLA-2 t=2, MLRA-4 t=4, GQA t=8)."
        return Table("paper_layout_times", pd.DataFrame(), why_empty=why), \
            Table("paper_layout_ratios", pd.DataFrame(), why_empty=why), missing_text
    fixed, varying = held_fixed(at, SAME_WORK)
    # Every row here is one device's time: GQA, GLA-2 and MLRA-4 as one device's share of
    # their group (device-share) and MLA at t=1 on its own device, however its groups were
    # timed (concurrent or isolated). Split by timing mode, MLA would never meet MLRA-4.
    mixed_modes = "timing_mode" in varying
    varying = [c for c in varying if c != "timing_mode"]
    # Fewest concurrent groups first: MLA t=1 dp=1 before dp=4 when both ran.
    at = at.sort_values("dp", kind="stable")
    times = wide(at.drop_duplicates(["variant"] + varying + ["context"]), KERNEL, varying + ["context"])
    paper_ratio = paper.pivot_table(index=["context", "context_label"], columns="variant",
                                    values="latency_us").reset_index()
    recs = []
    for key, g in at.groupby(varying + ["context"], dropna=False, sort=False):
        first = g.drop_duplicates("variant")
        first.index = first["variant"]
        if "mlra4" not in first.index:
            continue
        den = first.loc["mlra4"]
        near = paper_ratio.iloc[(np.log(paper_ratio["context"]) - math.log(den["context"])).abs().argmin()]
        for v in PAPER_RATIOS:
            if v not in first.index:
                continue
            num = first.loc[v]
            name = f"{label(v)}/MLRA-4"
            e = iv.ratio(num["_config"], den["_config"], "kernel",
                         label=f"{name} kernel, paper layout, " + describe(den, varying + ["context"]))
            by_bytes = num["kernel_bytes_per_step"] / den["kernel_bytes_per_step"]
            by_flops = num["kernel_flops_per_step"] / den["kernel_flops_per_step"]
            rec = {c: den[c] for c in varying}
            rec.update(context=den["context"], ratio=name)
            _ratio_columns(rec, "measured", e)
            rec.update({"bytes predict": by_bytes, "FLOPs predict": by_flops,
                        "roofline predicts": num["roofline_us"] / den["roofline_us"],
                        "paper": near[v] / near["mlra4"], "paper L": near["context_label"],
                        "reading": reading(name, e, num, den, by_bytes, by_flops)})
            recs.append(rec)
    note = interval_source(iv, at["_config"], "kernel")
    if mixed_modes:
        modes = ", ".join(f"{label(v)} {m}" for v, m in at.drop_duplicates("variant")[["variant", "timing_mode"]].itertuples(index=False))
        note += f" Timing modes differ ({modes}); each row is still one device's time, so they stand side by side."
    ratios = Table("paper_layout_ratios", _sorted(pd.DataFrame(recs), varying + ["context"]) if recs
                   else pd.DataFrame(), fixed, note,
                   why_empty="" if recs else "No MLRA-4 t=4 row beside an MLA t=1 or GQA t=8 row of the same work: "
                                             "no ratio to show.")
    return Table("paper_layout_times", times, fixed, note), ratios, missing_text


def kv_table(rows: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per-device KV bytes per token against TP, cross-checked three ways:
    elems × dtype bytes = bytes; plan recomputed from the shape columns (method §4);
    kernel_bytes_per_step = bytes × context × sequences × layers; and the paper's
    Table 1 where the shape is the paper's."""
    recs = []
    shape_cols = ["variant", "tp", "n_head", "head_dim", "rope_dim", "kv_lora_rank", "block_width",
                  "kv_heads", "kv_dtype"]
    for key, g in rows.groupby(shape_cols, sort=False, dropna=False):
        r = dict(zip(shape_cols, key))
        problems = []
        elems = g["kv_elems_per_token"].unique()
        byts = g["kv_bytes_per_token"].unique()
        if len(elems) > 1 or len(byts) > 1:
            problems.append(f"rows disagree: elems {sorted(elems)}, bytes {sorted(byts)}")
        e, b = float(elems[0]), float(byts[0])
        if np.isnan(e) or np.isnan(b):
            problems.append("kv_elems/bytes_per_token missing")
        db = int(g["dtype_bytes"].iloc[0])
        if e * db != b:
            problems.append(f"elems×{db} = {e * db:g} ≠ bytes {b:g}")
        try:
            plan = model.kv_elems_per_token(r["variant"], int(r["tp"]), int(r["head_dim"]), int(r["rope_dim"]),
                                            int(r["kv_lora_rank"]), int(r["block_width"]), int(r["kv_heads"]))
        except (ValueError, ZeroDivisionError, KeyError):
            plan = np.nan
        if plan != e:
            problems.append(f"method §4 plan gives {plan:g} elems")
        expect = g["kv_bytes_per_token"] * g["context"] * g["seqs_per_group"] * g["n_layer"]
        off = (expect != g["kernel_bytes_per_step"]).sum()
        if off:
            problems.append(f"kernel_bytes_per_step ≠ bytes×context×seqs×layers in {off} row(s)")
        paper_dh = np.nan
        if all(r[k] == v for k, v in PAPER_SHAPE.items() if not (r["variant"] in model.GROUPED and k in ("rope_dim", "kv_lora_rank"))) \
                and PAPER_KV_HEADS.get(r["variant"], r["kv_heads"]) == r["kv_heads"]:
            hit = paper[(paper["variant"] == r["variant"]) & (paper["tp"] == r["tp"])]
            if len(hit):
                paper_dh = float(hit["elems_in_dh"].iloc[0])
                if paper_dh * 128 != e:
                    problems.append(f"paper Table 1 gives {paper_dh:g}·d_h = {paper_dh * 128:g} elems")
        recs.append(dict(variant=LABEL.get(r["variant"], r["variant"]), tp=int(r["tp"]), n_head=int(r["n_head"]),
                         shape=_shape(r), kv_dtype=r["kv_dtype"], kv_elems_per_token=e,
                         kv_bytes_per_token=b, in_d_h=e / r["head_dim"] if r["head_dim"] else np.nan,
                         plan_elems=plan, paper_in_d_h=paper_dh,
                         check="ok" if not problems else "**MISMATCH**: " + "; ".join(problems),
                         _v=variant_key(r["variant"])))
    out = pd.DataFrame(recs)
    return out.sort_values(["_v", "n_head", "shape", "kv_dtype", "tp"]).drop(columns="_v").reset_index(drop=True)


def _shape(r) -> str:
    if r["variant"] in model.GROUPED:
        return f"n_kv={_whole(r['kv_heads'])} d_h={_whole(r['head_dim'])}"
    return f"d_c={_whole(r['kv_lora_rank'])} d_l={_whole(r['block_width'])} d_r={_whole(r['rope_dim'])}"


def _whole(x) -> str:
    """A count for a label; "–" for an empty cell (the reader leaves refused values empty)."""
    return "–" if pd.isna(x) else str(int(x))


def paper_comparison(paper: pd.DataFrame, hw: model.Hardware = model.H100) -> pd.DataFrame:
    """The model's prediction for the paper's shapes next to the paper's latencies."""
    recs = []
    for context_label, g in paper.groupby("context_label", sort=False):
        rec = {"context": context_label, "L (tokens)": int(g["context"].iloc[0])}
        for r in g.itertuples():
            b, f = model.paper_shape_cost(r.variant, int(r.context))
            rec[f"{LABEL[r.variant]} model"] = model.predict(b, f, hw)["kernel_us"]
            rec[f"{LABEL[r.variant]} paper"] = r.latency_us
        for src in ("model", "paper"):
            rec[f"MLA/MLRA-4 {src}"] = rec[f"MLA {src}"] / rec[f"MLRA-4 {src}"]
            rec[f"GQA/MLRA-4 {src}"] = rec[f"GQA {src}"] / rec[f"MLRA-4 {src}"]
        recs.append(rec)
    return pd.DataFrame(recs)


def crossover_table(rows: pd.DataFrame, presets: list[model.Hardware]) -> pd.DataFrame:
    """Heads per branch at which MLA (one d_c block) and an MLRA-4 block (d_c/4) turn
    compute-bound, for the CSV's latent shape and dtypes (or the paper's, if none)."""
    lat = rows[rows["variant"].isin(model.LATENT)]
    # A shape with an empty (refused) cell has no crossover to compute.
    shapes = lat[["kv_lora_rank", "rope_dim", "kv_dtype", "dtype_bytes"]].dropna().drop_duplicates()
    if shapes.empty:
        shapes = pd.DataFrame([dict(kv_lora_rank=512, rope_dim=64, kv_dtype="bf16", dtype_bytes=2)])
    recs = []
    for hw in presets:
        for s in shapes.itertuples():
            for name, dl in (("MLA", s.kv_lora_rank), ("MLRA-4 block", s.kv_lora_rank / 4)):
                recs.append({"hardware": hw.name, "ridge FLOP/B": hw.ridge, "kernel": name,
                             "d_l": int(dl), "d_r": int(s.rope_dim), "kv_dtype": s.kv_dtype,
                             "FLOP/B per head": (4 * dl + 2 * s.rope_dim) / ((dl + s.rope_dim) * s.dtype_bytes),
                             "compute-bound above heads": model.crossover_heads(hw, dl, s.rope_dim, s.dtype_bytes)})
    return pd.DataFrame(recs)


def gpu_table(rows: pd.DataFrame) -> pd.DataFrame:
    """cuda rows: the launched step, the graph-replayed kernel and the launch overhead
    between them, the GPU, and the roofline columns as the harness wrote them (held
    to the row's GPU calibration)."""
    df = rows.assign(launch_us=rows["step_us_median"] - rows["kernel_us_median"],
                     _v=rows["variant"].map(variant_key))
    df = df.sort_values(["_v", "tp", "kv_dtype", "batch", "context"], kind="stable")
    df["variant"] = df["variant"].map(lambda v: LABEL.get(v, v))
    cols = {"variant": "variant", "tp": "tp", "context": "context", "batch": "batch", "n_head": "heads",
            "kv_dtype": "dtype", "gpu_name": "GPU", "gpu_ranks_sharing": "ranks/GPU", "step_us_median": "step µs",
            "kernel_us_median": "graph µs", "launch_us": "launch µs", "achieved_gbs": "GB/s",
            "gpu_calib_read_gbs": "read roof GB/s", "roofline_us": "roofline µs", "roofline_fraction": "fraction"}
    return df[list(cols)].rename(columns=cols).reset_index(drop=True)


def noisy_tables(rows: pd.DataFrame, iv: Intervals) -> tuple[Table, Table]:
    """The medians and the ratios whose interval is wider than iv.threshold (relative
    half-width), each with the p10 and p90 of its steps (a ratio: of both operands)."""
    recs = []
    for _, r in rows.iterrows():
        for metric in ("step", "kernel"):
            e = iv.of(r["_config"], metric)
            if e.half_width > iv.threshold:
                recs.append({"configuration": describe(r, ["scope", "seqs_per_group", "context"]), "time": metric,
                             "median µs": e.median, "median µs" + LO: e.lo, "median µs" + HI: e.hi, "± %": 100 * e.half_width,
                             "p10 µs": e.p10, "p90 µs": e.p90, "units": e.units, "source": e.source})
    ratios = []
    for name, (e, a, b) in iv.ratios.items():
        if e.half_width > iv.threshold:
            ratios.append({"ratio": name, "value": e.median, "value" + LO: e.lo, "value" + HI: e.hi, "± %": 100 * e.half_width,
                           "numerator p10 µs": a.p10, "numerator p90 µs": a.p90,
                           "denominator p10 µs": b.p10, "denominator p90 µs": b.p90})
    limit = f"±{100 * iv.threshold:g}%"
    return (Table("noisy_medians", pd.DataFrame(recs),
                  why_empty=f"No median has a 95% interval wider than {limit}." if not recs else ""),
            Table("noisy_ratios", pd.DataFrame(ratios),
                  why_empty=f"No ratio has a 95% interval wider than {limit}." if not ratios else ""))
