"""The report's opening: a few sentences naming the main findings, each with its
numbers and 95% interval, taken from the tables (one sentence per finding that the
input can support; the noise sentence always)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import tables
from .stats import HI, LO, Intervals
from .tables import SAME_WORK, Table, label, tokens_text


def _cell(t: Table, row: pd.Series, col: str):
    """A column's value in a table row, or the value the table holds fixed."""
    return row[col] if col in row.index else t.fixed.get(col)


def _paper_layout(ratios: Table) -> list[str]:
    if ratios.data.empty:
        return []
    out = []
    d = ratios.data
    if "scope" in d and (d["scope"] == "kernel").any():   # the paper's measure is the kernel alone
        d = d[d["scope"] == "kernel"]
    longest = d[d["context"] == d["context"].max()]
    for _, r in longest.iterrows():
        scope = _cell(ratios, r, "scope")
        out.append(f"In the paper's layout at L = {tokens_text(r['context'])} ({scope} scope, kernel time per device): "
                   f"{r['reading'][:-1]}; the paper measured {r['paper']:.2f}× at {r['paper L']}.")
    return out


def _t1_comparison(rows: pd.DataFrame, iv: Intervals, baseline: str) -> list[str]:
    """The baseline against MLA (or MLRA-4, if MLA is the baseline) at t = 1, longest context."""
    other = "mlra4" if baseline == "mla" else "mla"
    one = rows[rows["tp"] == 1]
    one = one[one["scope"] == "kernel"] if (one["scope"] == "kernel").any() else one
    base = one[one["variant"] == baseline].sort_values("context", ascending=False)
    key = SAME_WORK + ["dp", "context"]
    others = tables.matches(one[one["variant"] == other], key)
    for _, b in base.iterrows():
        hit = others.get(tables.key_text(b, key))
        if hit is None:
            continue
        o = hit.iloc[0]
        name = f"{label(baseline)}/{label(other)} kernel time"
        e = iv.ratio(b["_config"], o["_config"], "kernel",
                     label=f"{name}, " + tables.describe(b, ["scope", "context"]))
        text = tables.reading(name, e, b, o, b["kernel_bytes_per_step"] / o["kernel_bytes_per_step"],
                              b["kernel_flops_per_step"] / o["kernel_flops_per_step"])
        return [f"At t = 1 and L = {tokens_text(b['context'])} ({b['scope']} scope): {text}"]
    return []


def _scaling(scaling: Table, baseline: str) -> list[str]:
    d = scaling.data
    if d.empty:
        return []
    d = d[d["tp"] > 1]
    pick = d[d["variant"] == label(baseline)]
    d = pick if len(pick) else d
    d = d[d["context"] == d["context"].max()]
    r = d.loc[d["tp"].idxmax()]
    seqs = _cell(scaling, r, "seqs_per_group")
    return [f"With the work per TP group fixed ({seqs:g} sequence(s) per group, L = {tokens_text(r['context'])}, "
            f"{_cell(scaling, r, 'scope')} scope), {r['variant']} runs its step {r['speedup']:.2f}× "
            f"[{r['speedup' + LO]:.2f}, {r['speedup' + HI]:.2f}] faster at t = {int(r['tp'])} than at t = 1 "
            f"(strong-scaling efficiency {r['efficiency']:.2f})."]


def _allreduce(ar: Table) -> list[str]:
    d = ar.data
    if d.empty or d["share %"].isna().all():
        return []
    r = d.loc[d["share %"].idxmax()]
    imb = f", and the wait for the slowest rank another {r['imbalance %']:.1f}%" if "imbalance %" in d else \
        " (with the wait for the slowest rank: the CSV does not separate them)"
    return [f"The all-reduce takes up to {r['share %']:.1f}% of the {_cell(ar, r, 'scope')} step "
            f"({r['variant']} t={int(r['tp'])}, L = {tokens_text(r['context'])}){imb}."]


def _noise(iv: Intervals, rows: pd.DataFrame) -> str:
    meds = [iv.of(c, m) for c in rows["_config"] for m in ("step", "kernel")]
    meds = [e for e in meds if np.isfinite(e.half_width)]
    ratios = [r for r, _, _ in iv.ratios.values() if np.isfinite(r.half_width)]
    bad_m = sum(e.half_width > iv.threshold for e in meds)
    bad_r = sum(r.half_width > iv.threshold for r in ratios)
    how = f"(bootstrap, {iv.resamples} resamples, seed {iv.seed})"
    if not meds:
        return "No median has an interval: the rows hold no spread and no samples were given."
    if not bad_m and not bad_r:
        return (f"Every one of the {len(meds)} medians and {len(ratios)} ratios has a 95% interval within "
                f"±{100 * iv.threshold:g}% {how}.")
    widest = max(meds + ratios, key=lambda e: e.half_width)
    return (f"{bad_m} of {len(meds)} medians and {bad_r} of {len(ratios)} ratios have a 95% interval wider than "
            f"±{100 * iv.threshold:g}% {how}, the widest ±{100 * widest.half_width:.0f}%; they are flagged ⚠ and "
            f"listed under Noisy measurements.")


def sentences(rows: pd.DataFrame, iv: Intervals, baseline: str, paper_ratios: Table, scaling: Table,
              allreduce: Table) -> list[str]:
    return (_paper_layout(paper_ratios) + _t1_comparison(rows, iv, baseline) + _scaling(scaling, baseline)
            + _allreduce(allreduce) + [_noise(iv, rows)])
