"""The node's noise: the FTQ probe's reports (`mlra noise --out`, and the sweep's
`<out>.noise-<run_id>.json`) and the periodicity of each configuration's per-step times.

A probe report holds, per rank, the work done in each 100 µs quantum summarised (mean,
coefficient of variation, fraction of quanta that lost more than 10% of the undisturbed
work) and its amplitude spectrum on log-spaced bins. A configuration's steps are
periodic when one frequency holds most of their variance: a timer tick or a daemon
that fires every few steps, rather than random jitter."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from .reader import InputError, expand_paths

# The run-level columns the sweep writes from its probe (docs/csv-schema.md, schema 5).
NOISE_ROW_COLUMNS = ["noise_cv_max", "noise_lost_fraction_max", "noise_top_hz"]
# A configuration's steps are "dominated by a periodic component" when one frequency bin
# holds at least this share of their variance (the rest spread over N/2 − 1 bins).
PERIODIC_SHARE = 0.5
# Below this many steps a configuration's periodogram has too few bins to say anything;
# its run's steps are then taken together (each configuration's divided by its median).
MIN_STEPS = 32
# The probe's node is "quiet enough" for intervals of ±threshold when no rank lost more
# than this fraction of its quanta and the worst rank's CV per quantum is below the threshold.
QUIET_LOST = 0.01


def load_reports(patterns: list[str], warnings: list[str]) -> list[dict]:
    """The probe reports in `patterns` (paths or globs); a file that is not one is a warning."""
    reports = []
    for path in expand_paths(patterns):
        try:
            with open(path, encoding="utf-8") as f:
                r = json.load(f)
            ranks = r["ranks"]
            for k in ranks:
                s = k["summary"]
                if not all(math.isfinite(float(s[c])) and float(s[c]) >= 0 for c in ("cv", "lost_fraction", "mean_work")):
                    raise ValueError(f"rank {k.get('rank')}: impossible summary values")
                if len(s["spectrum_hz"]) != len(s["spectrum_amplitude"]):
                    raise ValueError(f"rank {k.get('rank')}: spectrum_hz and spectrum_amplitude differ in length")
            r["_path"] = path
            reports.append(r)
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.append(f"{path}: not a noise probe report (mlra noise --out): {e}; skipped")
    return reports


def probe_table(reports: list[dict]) -> pd.DataFrame:
    """One row per rank of every report: where and when, and what the probe found."""
    recs = []
    for r in reports:
        for k in r["ranks"]:
            s = k["summary"]
            peaks = ", ".join(f"{p['hz']:.1f} Hz ({100 * p['amplitude']:.2f}%)" for p in s.get("peaks", []))
            recs.append({"started": r.get("started", ""), "host": k["host"], "rank": k["rank"],
                         "quanta": s["quanta"], "quantum µs": 1e6 * s["quantum_seconds"],
                         "CV": s["cv"], "lost >10% (%)": 100 * s["lost_fraction"],
                         "strongest components (amplitude, % of mean work)": peaks})
    return pd.DataFrame(recs)


def quiet_sentence(reports: list[dict], threshold: float) -> str:
    """Whether the probed nodes were quiet enough for the report's ±threshold intervals, and why."""
    ranks = [(r, k) for r in reports for k in r["ranks"]]
    if not ranks:
        return ""
    worst_r, worst = max(ranks, key=lambda rk: rk[1]["summary"]["cv"])
    lost = max(k["summary"]["lost_fraction"] for _, k in ranks)
    cv = worst["summary"]["cv"]
    quiet = cv < threshold and lost < QUIET_LOST
    top = worst["summary"]["peaks"][0]["hz"] if worst["summary"].get("peaks") else None
    what = (f"the worst rank (rank {worst['rank']} on {worst['host']}) varied by CV {cv:.3f} per "
            f"{1e6 * worst['summary']['quantum_seconds']:g} µs quantum and at most {100 * lost:.2f}% of any rank's quanta "
            f"lost more than 10% of their work" + (f", its strongest interference at {top:.1f} Hz" if top else ""))
    if quiet:
        return (f"The probed node(s) were quiet enough for ±{100 * threshold:g}% intervals: {what} "
                f"(quiet: CV below {threshold:g} and under {100 * QUIET_LOST:g}% of quanta lost).")
    return (f"The probed node(s) were NOT quiet enough for ±{100 * threshold:g}% intervals: {what} "
            f"(quiet would be CV below {threshold:g} and under {100 * QUIET_LOST:g}% of quanta lost); "
            f"treat narrow intervals from these runs with suspicion and rerun on an idle node.")


def periodogram(x: np.ndarray) -> np.ndarray:
    """Power of x − mean(x) at the bins k = 1 … N/2 (numpy's real FFT); sums to N·var/2-ish."""
    y = np.asarray(x, float) - np.mean(x)
    return np.abs(np.fft.rfft(y))[1:] ** 2


def dominant_period(x: np.ndarray) -> tuple[float, float]:
    """(period in samples, share of the variance in that period's harmonics) of the strongest
    periodic component. A slow step every N is a pulse train: its power sits in equal parts
    at N/1, N/2, N/3 … samples, so the period is the lowest-frequency strong bin of which the
    strongest bin is a harmonic, and its share counts every harmonic. The first bin (one
    cycle over the whole series) is a drift, not a period: a component must repeat at least
    twice to be one, so bin 1 counts in the variance but never as the period."""
    p = periodogram(x)
    total = p.sum()
    if len(p) < 2 or total <= 0:
        return math.nan, 0.0
    strongest = int(np.argmax(p[1:])) + 2   # 1-based bin ≥ 2: frequency strongest / N per sample
    strong = [k + 1 for k in np.flatnonzero(p >= 0.5 * p[strongest - 1]) if k >= 1]
    base = min(k for k in strong if strongest % k == 0)
    share = p[base - 1::base].sum() / total
    return len(x) / base, float(share)


def _whole(v) -> str:
    """A whole number read as a float (the samples' numeric columns) written without ".0"."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def periodic_steps(samples: pd.DataFrame) -> pd.DataFrame:
    """Configurations (or, with fewer than MIN_STEPS steps each, runs) whose per-step times are
    dominated by one periodic component: the period in steps and in time, and its share."""
    if samples.empty or "step_us" not in samples.columns:
        return pd.DataFrame()
    recs, short = [], {}
    # One series: a configuration (its config_id from schema 3 on, else the sample's key
    # columns) as one TP group timed it in one repeat; its steps are in time order.
    if "config_id" in samples.columns and samples["config_id"].astype(str).str.strip().ne("").all():
        keys = ["run_id", "config_id"]
    else:
        keys = ["run_id"] + [c for c in ("variant", "scope", "tp", "context", "batch", "n_head",
                                         "kv_lora_rank", "kv_dtype", "threads") if c in samples.columns]
    keys += [c for c in ("tp_group", "repeat") if c in samples.columns]
    for key, g in samples.groupby(keys, sort=True):
        parts = dict(zip(keys, key))
        run, cfg = key[0], str(parts.get("config_id", ""))
        where = ", ".join(f"{c.replace('_', ' ')} {_whole(parts[c])}" for c in ("tp_group", "repeat") if c in parts)
        g = g.sort_values("step_index")
        steps = g["step_us"].to_numpy(float)
        steps = steps[np.isfinite(steps)]
        if len(steps) < MIN_STEPS:
            med = np.median(steps) if len(steps) else math.nan
            if len(steps) and med > 0:
                short.setdefault(run, []).append(steps / med)
            continue
        period, share = dominant_period(steps)
        if share >= PERIODIC_SHARE:
            first = g.iloc[0]
            recs.append({"what": f"{first.get('variant', '')} {first.get('scope', '')} t={_whole(first.get('tp', ''))} "
                                 f"L={_whole(first.get('context', ''))}" + (f" ({where})" if where else ""),
                         "run_id": run, "config_id": cfg, "steps": len(steps),
                         "period (steps)": period, "period µs": period * float(np.median(steps)),
                         "share of variance": share})
    for run, parts in short.items():   # a run's short configurations, one after the other
        series = np.concatenate(parts)
        if len(series) < MIN_STEPS:
            continue
        period, share = dominant_period(series)
        if share >= PERIODIC_SHARE:
            recs.append({"what": f"all {len(parts)} configurations of the run (fewer than {MIN_STEPS} steps each)",
                         "run_id": run, "config_id": "", "steps": len(series), "period (steps)": period,
                         "period µs": math.nan, "share of variance": share})
    return pd.DataFrame(recs)


__all__ = ["InputError", "NOISE_ROW_COLUMNS", "load_reports", "probe_table", "quiet_sentence", "periodogram", "dominant_period",
           "periodic_steps", "PERIODIC_SHARE", "MIN_STEPS"]
