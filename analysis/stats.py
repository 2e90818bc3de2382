"""Medians with 95% confidence intervals, by bootstrap over repeats and steps.

A configuration is measured by one or more *units*: each TP group of each repeat
or rerun (rows that share merge.MEASUREMENT_KEY). A unit's steps are its per-step
samples (`--samples`) when the samples file holds them, else a reconstruction from
the row's percentiles (`steps_from_percentiles`). The configuration's median is the
median over its units of each unit's median (with one unit: that unit's median, so
a row without samples keeps the harness's own `step_us_median`).

One bootstrap resample draws the units with replacement, then within each drawn
unit its steps with replacement, and takes the same median of medians; the 95%
interval is the 2.5th and 97.5th percentile of RESAMPLES such medians. A ratio of
two configurations is bootstrapped as the ratio of their resampled medians (the two
are measured independently). Every configuration draws from its own generator,
seeded by the report's seed and the configuration's key, so an interval does not
depend on which other configurations were in the input or in which order they
were computed: the same input and seed give the same report."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

RESAMPLES = 2000
CONFIDENCE = 0.95
DEFAULT_SEED = 1
# Relative half-width of a 95% interval above which a median or ratio is flagged.
DEFAULT_NOISE_THRESHOLD = 0.10
# Columns LO and HI beside a value column `c` are named c + LO, c + HI; report.md_table
# shows the three as one cell "median [lo, hi]", the CSVs keep them apart.
LO, HI = " lo", " hi"

# Per metric: the samples-file column and the row's percentile columns (quantile → column).
METRICS = {
    "step": ("step_us", {0.0: "step_us_min", 0.1: "step_us_p10", 0.5: "step_us_median", 0.9: "step_us_p90",
                         1.0: "step_us_max"}),
    "kernel": ("kernel_us", {0.1: "kernel_us_p10", 0.5: "kernel_us_median", 0.9: "kernel_us_p90"}),
    # The rows hold only the all-reduce median: its interval needs the samples.
    "allreduce": ("allreduce_us", {0.5: "allreduce_us_median"}),
}
SOURCE_SAMPLES, SOURCE_PERCENTILES = "samples", "percentiles"


@dataclass(frozen=True)
class Estimate:
    """A median (or ratio of medians) with its interval, and the p10/p90 of the steps."""
    median: float
    lo: float = math.nan
    hi: float = math.nan
    p10: float = math.nan
    p90: float = math.nan
    units: int = 0
    source: str = ""

    @property
    def half_width(self) -> float:
        """Relative half-width of the interval, (hi − lo) / 2 / |median|."""
        if not (np.isfinite(self.lo) and np.isfinite(self.hi) and self.median):
            return math.nan
        return (self.hi - self.lo) / 2 / abs(self.median)


NO_ESTIMATE = Estimate(math.nan)


def is_noisy(median, lo, hi, threshold: float) -> bool:
    """True when the interval's relative half-width exceeds the threshold (the one rule
    for the ⚠ flag in every table and for the noisy section)."""
    return bool(Estimate(float(median), float(lo), float(hi)).half_width > threshold)


def steps_from_percentiles(row, metric: str) -> np.ndarray | None:
    """A unit's steps rebuilt from its row's percentiles: the quantile function through
    the known points (min, p10, median, p90, max; for the kernel p10, median, p90, held
    flat beyond them), read at m evenly spaced quantiles, m = timed_steps made odd so
    the middle step is the row's median exactly. None without a median and a spread."""
    cells = {q: pd.to_numeric(row.get(c), errors="coerce") for q, c in METRICS[metric][1].items()}
    known = {q: float(v) for q, v in cells.items() if pd.notna(v)}
    if 0.5 not in known or len(known) < 2:
        return None
    n = pd.to_numeric(row.get("timed_steps"), errors="coerce")
    n = int(n) if pd.notna(n) else 20
    m = n if n % 2 else n + 1
    q = np.array(sorted(known))
    v = np.sort([known[k] for k in q])   # a quantile function cannot decrease
    return np.interp(np.linspace(0, 1, m), q, v)


def _median_of_medians(steps: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per resample (first axis): the median over units (second axis) of each unit's
    median over its first counts[...] steps (third axis; the rest is padding)."""
    if (counts == counts.flat[0]).all():
        unit = np.median(steps[..., :counts.flat[0]], axis=-1)
    else:
        pad = np.arange(steps.shape[-1]) >= counts[..., None]
        unit = np.nanmedian(np.where(pad, np.nan, steps), axis=-1)
    return np.median(unit, axis=-1)


def bootstrap(units: list[np.ndarray], rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """`resamples` bootstrap medians of medians (see the module docstring)."""
    sizes = np.array([len(u) for u in units])
    table = np.full((len(units), sizes.max()), np.nan)
    for i, u in enumerate(units):
        table[i, :len(u)] = u
    pick = rng.integers(0, len(units), size=(resamples, len(units)))          # units, with replacement
    counts = sizes[pick]                                                        # [B, R]
    at = (rng.random((resamples, len(units), sizes.max())) * counts[..., None]).astype(np.int64)
    return _median_of_medians(table[pick[..., None], at], counts)


def _interval(boot: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    lo, hi = np.percentile(boot, [tail, 100 - tail])
    return float(lo), float(hi)


def as_text(v) -> str:
    """A key or link cell as text: 4.0 and "4" alike, case and spaces ignored."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip().lower()


# How a sample finds its row: by run and config_id (schema 3), else by the columns
# the samples file has always carried (docs/csv-schema.md). With a `repeat` column in
# both, also by repeat.
SAMPLE_LINK_BY_ID = ["run_id", "config_id", "tp_group"]
SAMPLE_LINK = ["run_id", "variant", "scope", "tp", "tp_group", "context", "batch", "n_head", "kv_lora_rank",
               "kv_dtype", "threads", "timing_mode"]


class Intervals:
    """Bootstrap estimates of the configurations in `raw` (merged rows, one per unit,
    with merge's `_config` id), memoised per (configuration, metric)."""

    def __init__(self, raw: pd.DataFrame, samples: pd.DataFrame | None = None, *, seed: int = DEFAULT_SEED,
                 resamples: int = RESAMPLES, threshold: float = DEFAULT_NOISE_THRESHOLD):
        self.seed, self.resamples, self.threshold = seed, resamples, threshold
        self.units = {cid: g for cid, g in raw.groupby("_config", sort=False)}
        self._samples = self._link(raw, samples if samples is not None else pd.DataFrame())
        self._memo: dict[tuple[str, str], tuple[Estimate, np.ndarray | None]] = {}
        self.ratios: dict[str, tuple[Estimate, Estimate, Estimate]] = {}   # label → (ratio, numerator, denominator)
        self.linked_samples = sum(len(v) for v in self._samples.values())

    @staticmethod
    def _link(raw: pd.DataFrame, samples: pd.DataFrame) -> dict[int, pd.DataFrame]:
        """Raw row index → its samples."""
        if samples.empty:
            return {}
        extra = ["repeat"] if "repeat" in samples.columns and "repeat" in raw.columns else []
        by_id = "config_id" in samples.columns and "config_id" in raw.columns
        link = (SAMPLE_LINK_BY_ID if by_id else SAMPLE_LINK) + extra
        if any(c not in samples.columns or c not in raw.columns for c in link):
            return {}
        groups = {k: g for k, g in samples.groupby([samples[c].map(as_text) for c in link], sort=False)}
        out = {}
        for i, r in raw.iterrows():
            hit = groups.get(tuple(as_text(r[c]) for c in link))
            if hit is not None:
                out[i] = hit
        return out

    def _unit_steps(self, i, row, metric: str) -> tuple[np.ndarray | None, str]:
        col = METRICS[metric][0]
        s = self._samples.get(i)
        if s is not None and col in s.columns:
            v = pd.to_numeric(s[col], errors="coerce").dropna().to_numpy(float)
            if len(v):
                return v, SOURCE_SAMPLES
        return steps_from_percentiles(row, metric), SOURCE_PERCENTILES

    def _compute(self, cid: str, metric: str) -> tuple[Estimate, np.ndarray | None]:
        key = (cid, metric)
        if key in self._memo:
            return self._memo[key]
        units, sources = [], set()
        for i, row in self.units.get(cid, pd.DataFrame()).iterrows():
            steps, src = self._unit_steps(i, row, metric)
            if steps is not None:
                units.append(steps)
                sources.add(src)
        if not units:
            got = (NO_ESTIMATE, None)
        else:
            median = float(np.median([np.median(u) for u in units]))
            p10, p90 = np.percentile(np.concatenate(units), [10, 90])
            rng = np.random.default_rng([self.seed, zlib.crc32(f"{cid}\x00{metric}".encode())])
            boot = bootstrap(units, rng, self.resamples)
            lo, hi = _interval(boot)
            got = (Estimate(median, lo, hi, float(p10), float(p90), len(units), "+".join(sorted(sources))), boot)
        self._memo[key] = got
        return got

    def of(self, cid: str, metric: str = "step") -> Estimate:
        return self._compute(cid, metric)[0]

    def ratio(self, num: str, den: str, metric: str = "step", label: str = "") -> Estimate:
        """T(num)/T(den) with its bootstrap interval; recorded under `label` for the noisy section."""
        a, ba = self._compute(num, metric)
        b, bb = self._compute(den, metric)
        if ba is None or bb is None:
            return NO_ESTIMATE
        lo, hi = _interval(ba / bb)
        r = Estimate(a.median / b.median, lo, hi, units=min(a.units, b.units), source=a.source)
        if label:
            self.ratios[label] = (r, a, b)
        return r

    def estimated(self) -> list[tuple[str, str, Estimate]]:
        """Every (configuration, metric, estimate) computed so far."""
        return [(cid, metric, e) for (cid, metric), (e, _) in self._memo.items() if np.isfinite(e.median)]

    def sources(self) -> dict[str, int]:
        """How many estimated configurations took their steps from where."""
        out: dict[str, int] = {}
        for _, _, e in self.estimated():
            out[e.source] = out.get(e.source, 0) + 1
        return out


def add_columns(df: pd.DataFrame, name: str, est: list[Estimate]) -> pd.DataFrame:
    """df with the value column `name` and its interval columns from `est` (one per row)."""
    df[name] = [e.median for e in est]
    df[name + LO] = [e.lo for e in est]
    df[name + HI] = [e.hi for e in est]
    return df
