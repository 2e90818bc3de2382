"""The node's noise in the analysis: the probe's reports (`mlra noise --out`), the
periodicity of each configuration's steps, and section 12 of the report."""

from __future__ import annotations

import json

import numpy as np
import synth
from test_intervals import write_samples

from analysis import merge, noise, report


def probe(path, cv=0.01, lost=0.0, host="n1", ranks=2, top=250.0):
    """A probe report as mlra noise writes it (snake_case keys, a binned spectrum per rank)."""
    hz = [1.0, 10.0, top, 1000.0]
    rec = {"schema": 1, "harness": "0.1.0", "git_rev": "abc", "started": "2026-12-01T00:00:00Z",
           "quantum_seconds": 1e-4, "budget_seconds": 3.0,
           "ranks": [{"rank": r, "host": host, "node_rank": r,
                      "summary": {"quantum_seconds": 1e-4, "quanta": 30000, "mean_work": 1000.0, "full_work": 1010.0,
                                  "cv": cv, "lost_fraction": lost, "peaks": [{"hz": top, "amplitude": 0.02}],
                                  "spectrum_hz": hz, "spectrum_amplitude": [0.001, 0.002, 0.02, 0.001]}}
                     for r in range(ranks)]}
    path.write_text(json.dumps(rec))
    return str(path)


def test_a_hiccup_every_ten_steps_is_a_period_of_ten():
    rng = np.random.default_rng(3)
    x = 100 + rng.normal(0, 0.5, 400)
    x[::10] += 40   # one slow step in ten
    period, share = noise.dominant_period(x)
    assert period == 10 and share > 0.9
    steady = 100 + rng.normal(0, 1, 400)
    assert noise.dominant_period(steady)[1] < noise.PERIODIC_SHARE


def test_configurations_dominated_by_one_period_are_flagged(tmp_path):
    a, b = synth.row("mla", context=1024), synth.row("mlra4", context=1024)
    t = np.arange(256)
    periodic = list(100 + 20 * np.sin(2 * np.pi * t / 16))   # a 16-step cycle holds all the variance
    rng = np.random.default_rng(1)
    jitter = list(100 + rng.normal(0, 5, 256))
    smp = merge.load_samples([write_samples(tmp_path / "s.csv", [(a, periodic), (b, jitter)])]).rows
    got = noise.periodic_steps(smp)
    assert len(got) == 1 and got["what"].iloc[0].startswith("mla ")
    assert abs(got["period (steps)"].iloc[0] - 16) < 1e-9 and got["share of variance"].iloc[0] > 0.99
    assert abs(got["period µs"].iloc[0] - 16 * np.median(periodic)) < 1e-6


def test_short_configurations_are_taken_together_per_run(tmp_path):
    pairs = []
    for i, v in enumerate(["mla", "mlra4", "gqa", "mha"]):
        # 20 steps each (below MIN_STEPS), the slow step every 5th: together a period of 5.
        pairs.append((synth.row(v, context=512), [100.0 * (i + 1) * (1.5 if k % 5 == 0 else 1.0) for k in range(20)]))
    smp = merge.load_samples([write_samples(tmp_path / "s.csv", pairs)]).rows
    got = noise.periodic_steps(smp)
    assert len(got) == 1 and "all 4 configurations" in got["what"].iloc[0]
    assert got["period (steps)"].iloc[0] == 5


def test_reports_are_read_and_a_bad_one_is_a_warning(tmp_path):
    good = probe(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"ranks": [{"summary": {"cv": -1}}]}')
    warnings = []
    got = noise.load_reports([good, str(tmp_path / "b.json")], warnings)
    assert len(got) == 1 and len(warnings) == 1 and "b.json: not a noise probe report" in warnings[0]
    t = noise.probe_table(got)
    assert list(t["rank"]) == [0, 1] and t["CV"].iloc[0] == 0.01 and "250.0 Hz (2.00%)" in t.iloc[0, -1]


def test_the_quiet_sentence_follows_the_stated_rule(tmp_path):
    warnings = []
    quiet = noise.load_reports([probe(tmp_path / "q.json", cv=0.02, lost=0.001)], warnings)
    loud = noise.load_reports([probe(tmp_path / "l.json", cv=0.3, lost=0.2, top=84.0)], warnings)
    assert noise.quiet_sentence(quiet, 0.1).startswith("The probed node(s) were quiet enough for ±10% intervals")
    s = noise.quiet_sentence(loud, 0.1)
    assert s.startswith("The probed node(s) were NOT quiet enough") and "84.0 Hz" in s and "CV 0.300" in s
    assert noise.quiet_sentence([], 0.1) == ""


def test_section_12_shows_the_probe_and_says_why_when_there_is_nothing(tmp_path):
    rows = synth.sweep()
    f = synth.write_csv(tmp_path / "r.csv", rows)
    loaded = merge.load_sweeps([f])
    reports = noise.load_reports([probe(tmp_path / "p.json", host="n1"), probe(tmp_path / "p2.json", host="n2")], [])
    text = open(report.build(loaded, str(tmp_path / "out"), noise_reports=reports), encoding="utf-8").read()
    sec = text.split("## 12. Node noise")[1]
    assert "noise_spectra.png" in sec and "| n2 |" in sec and "were quiet enough" in sec
    assert "were quiet enough" in text.split("## Summary")[1].split("##")[0], "the summary says it too"
    assert (tmp_path / "out" / "noise_spectra.png").exists() and (tmp_path / "out" / "noise_probe.csv").exists()
    bare = open(report.build(merge.load_sweeps([f]), str(tmp_path / "bare")), encoding="utf-8").read()
    assert "_No noise probe in these rows" in bare.split("## 12. Node noise")[1]


def test_a_drift_over_the_whole_series_is_not_a_period():
    # Steps that slow down once over the run (a warm-up, a frequency change): one cycle over
    # the series is a drift; nothing repeats, so nothing is called periodic.
    x = np.linspace(120.0, 100.0, 40)
    period, share = noise.dominant_period(x)
    assert period <= 20 and share < noise.PERIODIC_SHARE
