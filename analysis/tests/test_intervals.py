"""Issue 14 (analysis): medians with bootstrap intervals over repeats and steps,
merged reruns, the noisy flag, like-for-like tables, the paper's layout, the
summary, the all-reduce columns and the figures' width."""

from __future__ import annotations

import csv
import struct

import numpy as np
import pytest
import synth

from analysis import cli, merge, report, stats, summary, tables

SAMPLE_HEADER = ["run_id", "variant", "scope", "tp", "tp_group", "context", "batch", "n_head", "kv_lora_rank",
                 "kv_dtype", "threads", "timing_mode", "step_index", "step_us", "kernel_us", "allreduce_us"]


def write_samples(path, pairs):
    """pairs: (sweep row, per-step times) → a samples file whose steps are exactly those times."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SAMPLE_HEADER)
        for r, times in pairs:
            for i, t in enumerate(times):
                w.writerow([r["run_id"], r["variant"], r["scope"], r["tp"], r["tp_group"], r["context"], r["batch"],
                            r["n_head"], r["kv_lora_rank"], r["kv_dtype"], r["threads"], "concurrent", i, t, t, ""])
    return str(path)


def measure(tmp_path, rows, samples=None, **kw):
    raw = merge.load_sweeps([synth.write_csv(tmp_path / "s.csv", rows)]).rows
    smp = merge.load_samples([samples]).rows if samples else None
    iv = stats.Intervals(raw, smp, **kw)
    return tables.attach_estimates(tables.collapse_groups(raw), iv), raw, iv


# ---- the bootstrap itself ------------------------------------------------------------

def reference_bootstrap(units, rng, resamples):
    """stats.bootstrap written as plain loops over the same draws: units with replacement,
    then steps with replacement within each drawn unit, median of the units' medians."""
    sizes = np.array([len(u) for u in units])
    pick = rng.integers(0, len(units), size=(resamples, len(units)))
    u = rng.random((resamples, len(units), sizes.max()))
    out = np.empty(resamples)
    for b in range(resamples):
        meds = []
        for j in range(len(units)):
            unit = units[pick[b, j]]
            meds.append(np.median(unit[(u[b, j, :len(unit)] * len(unit)).astype(int)]))
        out[b] = np.median(meds)
    return out


def test_the_vectorised_bootstrap_is_the_plain_one():
    units = [np.array([10.0, 11, 12, 13, 50]), np.array([20.0, 21, 22]), np.array([15.0, 16, 17, 18])]
    got = stats.bootstrap(units, np.random.default_rng(7), 300)
    want = reference_bootstrap(units, np.random.default_rng(7), 300)
    np.testing.assert_allclose(got, want)


def test_three_steps_give_the_interval_worked_out_by_hand():
    # One unit {1, 2, 3}: a resample's median is 1 when two or three of its three draws are 1,
    # P = 3·(1/3)²·(2/3) + (1/3)³ = 7/27 ≈ 0.26 > 0.025, likewise 3: the 95% interval is [1, 3].
    boot = stats.bootstrap([np.array([1.0, 2.0, 3.0])], np.random.default_rng(0), 2000)
    assert set(np.unique(boot)) <= {1.0, 2.0, 3.0}
    assert np.mean(boot == 1.0) == pytest.approx(7 / 27, abs=0.03)
    assert np.percentile(boot, [2.5, 97.5]).tolist() == [1.0, 3.0]
    # Constant steps: no spread, a zero-width interval.
    assert set(stats.bootstrap([np.full(9, 5.0)], np.random.default_rng(0), 100)) == {5.0}


def test_known_gaussian_noise_gives_the_textbook_interval(tmp_path):
    # 400 steps with σ = 50 µs: the median's standard error is √(π/2)·σ/√n = 1.2533·50/20 = 3.13 µs,
    # so the 95% interval is about ±1.96·3.13 = ±6.14 µs around the sample median.
    r = synth.row("mla", kernel_us=1000.0)
    steps = np.random.default_rng(0).normal(1000.0, 50.0, 400)
    df, _, iv = measure(tmp_path, [r], write_samples(tmp_path / "smp.csv", [(r, steps)]))
    e = iv.of(df["_config"].iloc[0])
    assert e.source == "samples" and e.median == pytest.approx(np.median(steps))
    assert (e.hi - e.lo) / 2 == pytest.approx(6.14, rel=0.25)
    assert e.lo < e.median < e.hi
    assert (e.p10, e.p90) == pytest.approx(tuple(np.percentile(steps, [10, 90])))


def test_without_samples_the_steps_come_from_the_rows_percentiles():
    # synth.row(kernel_us=100): step min 90, p10 95, median 100, p90 110, max 130, 20 timed steps →
    # 21 steps (odd, so the middle one is the median) at quantiles 0, 0.05, …, 1 on the line through them.
    steps = stats.steps_from_percentiles(synth.row("mla", kernel_us=100.0), "step")
    assert len(steps) == 21
    assert steps[[0, 1, 2, 3, 10, 18, 19, 20]].tolist() == pytest.approx([90, 92.5, 95, 95.625, 100, 110, 120, 130])
    # The kernel has no min/max: held at p10 and p90 beyond them.
    k = stats.steps_from_percentiles(synth.row("mla", kernel_us=100.0), "kernel")
    assert (k[0], k[10], k[-1]) == pytest.approx((95, 100, 110))
    assert stats.steps_from_percentiles(synth.row("mla", step_us_p10="", step_us_p90="", step_us_min="",
                                                  step_us_max=""), "step") is None


def test_a_row_without_samples_keeps_its_own_median_and_the_seed_reproduces_it(tmp_path):
    rows = [synth.row("mla", kernel_us=100.0), synth.row("mlra4", kernel_us=50.0)]
    df, _, iv = measure(tmp_path, rows, seed=3)
    e = iv.of(df["_config"].iloc[0])
    assert e.median == 100.0 and e.source == "percentiles" and (e.p10, e.p90) == pytest.approx((95, 110))
    again = measure(tmp_path, rows, seed=3)[2].of(df["_config"].iloc[0])
    assert (again.lo, again.hi) == (e.lo, e.hi)
    # An interval does not depend on the other configurations in the input.
    alone = measure(tmp_path, rows[:1], seed=3)[2].of(df["_config"].iloc[0])
    assert (alone.lo, alone.hi) == (e.lo, e.hi)


def test_a_ratio_is_bootstrapped_as_a_ratio(tmp_path):
    a, b = synth.row("mla", kernel_us=300.0), synth.row("mlra4", kernel_us=100.0)
    smp = write_samples(tmp_path / "smp.csv", [(a, [300.0] * 11), (b, [100.0] * 11)])
    df, _, iv = measure(tmp_path, [a, b], smp)
    num, den = df.set_index("variant").loc[["mla", "mlra4"], "_config"]
    r = iv.ratio(num, den, label="MLA/MLRA-4")
    assert (r.median, r.lo, r.hi) == (3.0, 3.0, 3.0)          # no spread: exactly 300/100
    noisy = write_samples(tmp_path / "n.csv", [(a, [200.0, 300.0, 400.0]), (b, [100.0] * 3)])
    df, _, iv = measure(tmp_path, [a, b], noisy)
    r = iv.ratio(*df.set_index("variant").loc[["mla", "mlra4"], "_config"], label="x")
    assert (r.median, r.lo, r.hi) == (3.0, 2.0, 4.0)          # the numerator's [200, 400] over 100


# ---- merged reruns and the noisy flag ---------------------------------------------------

def test_two_runs_3x_apart_merge_into_one_wide_flagged_median(tmp_path):
    rows = [synth.row("mla", kernel_us=100.0, run_id="a", date="2026-01-01T00:00:00Z"),
            synth.row("mla", kernel_us=300.0, run_id="b", date="2026-01-02T00:00:00Z"),
            synth.row("mlra4", kernel_us=100.0)]
    df, _, iv = measure(tmp_path, rows)
    mla = df[df["variant"] == "mla"].iloc[0]
    assert mla["units"] == 2
    # Median of the two runs' medians: 200. A resample draws (a, a), (a, b), (b, a) or (b, b):
    # its median is about 100, 200 or 300, so the interval reaches from run a's steps to run b's.
    assert mla[tables.STEP] == 200.0
    assert mla[tables.STEP + stats.LO] < 105 and mla[tables.STEP + stats.HI] > 290
    medians, _ = tables.noisy_tables(df, iv)
    step = medians.data[medians.data["time"] == "step"].iloc[0]
    assert step["configuration"].startswith("MLA t=1") and step["± %"] > 10
    # p10 and p90 of the 42 pooled steps (21 per run, see the test above), linear between ranks:
    # p10 at rank 0.1·41 = 4.1: run a's steps 4 and 5 (96.25, 96.875) → 96.3125;
    # p90 at rank 36.9: run b's steps 15 and 16 (quantiles 0.75, 0.8: 318.75, 322.5) → 322.125.
    assert (step["p10 µs"], step["p90 µs"]) == pytest.approx((96.3125, 322.125))
    out = tmp_path / "rep"
    assert cli.main(["report", str(tmp_path / "s.csv"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "] ⚠ |" in text and "## 10. Noisy measurements" in text   # a flagged cell
    assert "| MLA t=1 scope=kernel seqs_per_group=1 context=1024 | step |" in text
    # A looser threshold flags nothing.
    assert cli.main(["report", str(tmp_path / "s.csv"), "--out", str(out), "--noise-threshold", "5"]) == 0
    text = (out / "report.md").read_text()
    assert "] ⚠" not in text and "No median has a 95% interval wider than ±500%." in text


def test_the_same_input_and_seed_give_the_same_report(tmp_path):
    p = synth.write_csv(tmp_path / "s.csv", synth.sweep()[::5])
    texts = []
    for out in ("a", "b"):
        assert cli.main(["report", p, "--out", str(tmp_path / out), "--seed", "9", "--resamples", "300"]) == 0
        texts.append((tmp_path / out / "report.md").read_text())
    assert texts[0] == texts[1]
    assert (tmp_path / "a" / "latency.csv").read_text() == (tmp_path / "b" / "latency.csv").read_text()


# ---- like for like -------------------------------------------------------------------

def four_ranks():
    """MLA t=1 as 4 data-parallel groups of 1 sequence; MLRA-4 t=4 decoding 1 and 4 sequences."""
    mla = [synth.row("mla", tp=1, dp=4, batch=4, tp_group=g, kernel_us=400.0) for g in range(4)]
    return mla + [synth.row("mlra4", tp=4, batch=1, kernel_us=150.0), synth.row("mlra4", tp=4, batch=4, kernel_us=500.0)]


def test_latency_sets_only_equal_work_per_group_side_by_side(tmp_path):
    df, _, iv = measure(tmp_path, four_ranks())
    lat = tables.latency_table(df, iv)
    d = lat.data.set_index("seqs_per_group")
    assert "seqs_per_group" not in lat.fixed
    assert d.loc[1, "MLA t=1"] == 400.0 and d.loc[1, "MLRA-4 t=4"] == 150.0
    assert np.isnan(d.loc[4, "MLA t=1"]) and d.loc[4, "MLRA-4 t=4"] == 500.0
    # The throughput table compares the two 4-rank layouts at the same global batch (4).
    tput = tables.throughput_table(df, iv)
    assert tput.fixed["world_size"] == 4
    row = tput.data[tput.data["batch"] == 4].iloc[0]
    assert row["MLA t=1 dp=4"] == pytest.approx(4 / 400e-6) and row["MLRA-4 t=4 dp=1"] == pytest.approx(4 / 500e-6)


def test_every_table_says_what_it_holds_fixed(tmp_path):
    df, raw, iv = measure(tmp_path, [synth.row(v, tp=t) for v in ("mla", "mlra4") for t in (1, 2)])
    for t in (tables.latency_table(df, iv), tables.speedup_table(df, iv), tables.scaling_table(df, iv),
              tables.efficiency_table(df, raw, iv)):
        assert t.fixed["seqs_per_group"] == 1 and t.fixed["kv_dtype"] == "bf16" and t.fixed["threads"] == 1, t.name
    out = tmp_path / "r"
    report.build(merge.load_sweeps([str(tmp_path / "s.csv")]), str(out))
    text = (out / "report.md").read_text()
    assert text.count("Held fixed in every row:") >= 6 and "`seqs_per_group` 1" in text


def test_strong_scaling_refuses_unequal_work(tmp_path):
    # t=1 decodes 1 sequence, t=4 decodes 4: not the same work per group, no speedup to state.
    rows = [synth.row("mla", tp=1, batch=1, kernel_us=400.0), synth.row("mla", tp=4, batch=4, kernel_us=300.0)]
    df, _, iv = measure(tmp_path, rows)
    sc = tables.scaling_table(df, iv)
    assert sc.data.empty and sc.why_empty.startswith("No configuration was measured at t = 1 and at a t > 1")
    out = tmp_path / "r"
    report.build(merge.load_sweeps([str(tmp_path / "s.csv")]), str(out))
    text = (out / "report.md").read_text()
    assert "_No configuration was measured at t = 1 and at a t > 1" in text
    assert "_No MLRA-4 rows: nothing to divide by (`--baseline mlra4`)._" in text


def test_efficiency_checks_each_tp_group_against_itself(tmp_path):
    # Two TP groups at 10 and 30 ms, each with its own consistent GB/s. Their medians
    # (2·B/30 GB/s against B/20 ms) disagree, which was flagged "GB/s ≠ bytes/time" before.
    rows = [synth.row("mla", tp=1, dp=2, batch=2, tp_group=0, kernel_us=1e4),
            synth.row("mla", tp=1, dp=2, batch=2, tp_group=1, kernel_us=3e4)]
    df, raw, iv = measure(tmp_path, rows)
    assert tables.efficiency_table(df, raw, iv).data["check"].tolist() == ["ok"]
    rows[1] = dict(rows[1], achieved_gbs=99.0)
    df, raw, iv = measure(tmp_path, rows)
    assert "GB/s ≠ bytes/time" in tables.efficiency_table(df, raw, iv).data["check"].iloc[0]
    assert "(in 1 of 2 rows)" in tables.efficiency_table(df, raw, iv).data["check"].iloc[0]


def test_baseline_option(tmp_path):
    rows = [synth.row("mla", tp=2, kernel_us=300.0), synth.row("mlra4", tp=2, kernel_us=100.0)]
    df, _, iv = measure(tmp_path, rows)
    sp = tables.speedup_table(df, iv, baseline="mla").data.iloc[0]
    assert sp["MLRA-4/MLA"] == pytest.approx(1 / 3) and sp["MLA µs"] == 300.0
    out = tmp_path / "r"
    assert cli.main(["report", str(tmp_path / "s.csv"), "--out", str(out), "--baseline", "mla"]) == 0
    assert "## 4. Speedup of MLA" in (out / "report.md").read_text()


# ---- the paper's layout ------------------------------------------------------------------

# A machine where every kernel is bandwidth-bound: ridge = 1e6 GFLOP/s / 10 GB/s = 1e5 FLOP/byte.
FAST = dict(calib_sgemm_gflops=1e6, calib_fma_gflops=1e6)


def paper_layout_rows(with_gqa=True):
    L = 131072
    rows = [synth.row("mla", tp=1, context=L, kernel_us=300.0, **FAST),
            synth.row("gla2", tp=2, context=L, kernel_us=170.0, **FAST),
            synth.row("mlra4", tp=4, context=L, kernel_us=100.0, **FAST),
            synth.row("mlra4", tp=1, context=L, kernel_us=900.0, **FAST)]   # not a paper layout: left out
    if with_gqa:
        rows.append(synth.row("gqa", tp=8, context=L, kernel_us=130.0, **FAST))
    return rows


def test_paper_layout_ratios_by_hand(tmp_path):
    df, _, iv = measure(tmp_path, paper_layout_rows())
    paper, _ = report.load_paper()
    times, ratios, missing = tables.paper_layout(df, iv, paper)
    assert missing == "Every paper layout was measured."
    t = times.data.iloc[0]
    assert (t["MLA t=1"], t["GLA-2 t=2"], t["MLRA-4 t=4"], t["GQA t=8"]) == (300.0, 170.0, 100.0, 130.0)
    assert "MLRA-4 t=1" not in times.data
    r = ratios.data.set_index("ratio")
    # Bytes per token: MLA 576 elements, MLRA-4 t=4 one block 128 + rope 64 = 192 → 3.0; GQA t=8 one KV
    # head, K and V: 256 → 1.333. FLOPs per token: MLA 64·(2·576 + 2·512) = 139264, MLRA-4 64·(2·192 + 256)
    # = 40960 → 3.4; GQA 8 heads · 4·128 = 4096 → 0.1. The paper at 128K: 136.0/48.4, 50.8/48.4.
    assert r.loc["MLA/MLRA-4", "measured"] == pytest.approx(3.0)
    assert r.loc["MLA/MLRA-4", "bytes predict"] == pytest.approx(3.0)
    assert r.loc["MLA/MLRA-4", "FLOPs predict"] == pytest.approx(3.4)
    assert r.loc["MLA/MLRA-4", "paper"] == pytest.approx(136.0 / 48.4) and r.loc["MLA/MLRA-4", "paper L"] == "128K"
    assert r.loc["GQA/MLRA-4", "measured"] == pytest.approx(1.3)
    assert r.loc["GQA/MLRA-4", "bytes predict"] == pytest.approx(256 / 192)
    assert r.loc["GQA/MLRA-4", "FLOPs predict"] == pytest.approx(0.1)
    assert r.loc["GQA/MLRA-4", "paper"] == pytest.approx(50.8 / 48.4)
    lo, hi = r.loc["MLA/MLRA-4", "measured lo"], r.loc["MLA/MLRA-4", "measured hi"]
    assert lo < 3.0 < hi
    assert r.loc["MLA/MLRA-4", "reading"] == (
        f"MLA/MLRA-4 = 3 [{lo:.3g}, {hi:.3g}] follows the bytes (3.00×) rather than the FLOPs (3.40×): both kernels "
        "are bandwidth-bound here (MLA 121, MLRA-4 107 FLOP/byte; ridge 1e+05), so the roofline expects the bytes.")
    assert r.loc["GQA/MLRA-4", "reading"].startswith("GQA/MLRA-4 = 1.3 [")
    assert "follows the bytes (1.33×) rather than the FLOPs (0.10×)" in r.loc["GQA/MLRA-4", "reading"]


def test_paper_layout_sets_mla_on_its_own_device_beside_device_shares(tmp_path):
    """`--preset paper` on one rank times MLA at t = 1 concurrent (its own device) and the
    others as one device's share: both are one device's time, so MLA still meets MLRA-4."""
    rows = [{**r, "timing_mode": "concurrent" if r["variant"] == "mla" else "device-share"} for r in paper_layout_rows()]
    df, _, iv = measure(tmp_path, rows)
    times, ratios, _ = tables.paper_layout(df, iv, report.load_paper()[0])
    assert len(times.data) == 1 and "timing_mode" not in times.data
    assert ratios.data.set_index("ratio").loc["MLA/MLRA-4", "measured"] == pytest.approx(3.0)
    assert "Timing modes differ (" in ratios.note and "MLA concurrent" in ratios.note


def test_paper_layout_says_which_layouts_are_missing(tmp_path):
    df, _, iv = measure(tmp_path, paper_layout_rows(with_gqa=False) + [synth.row("gqa", tp=2)])
    _, ratios, missing = tables.paper_layout(df, iv, report.load_paper()[0])
    assert missing == "Missing: GQA t=8 (measured at t = 2)."
    assert ratios.data["ratio"].tolist() == ["MLA/MLRA-4"]
    df, _, iv = measure(tmp_path, [synth.row("mla", tp=2)])
    times, ratios, _ = tables.paper_layout(df, iv, report.load_paper()[0])
    assert times.data.empty and times.why_empty.startswith("No row is at a paper TP degree")


# ---- the summary ---------------------------------------------------------------------

def test_summary_sentences(tmp_path):
    rows = paper_layout_rows() + [synth.row("mla", tp=4, context=131072, kernel_us=150.0, **FAST)]
    df, _, iv = measure(tmp_path, rows)
    paper = report.load_paper()[0]
    _, ratios, _ = tables.paper_layout(df, iv, paper)
    scaling, ar = tables.scaling_table(df, iv), tables.allreduce_table(df, iv)
    said = summary.sentences(df, iv, "mlra4", ratios, scaling, ar)
    assert 3 <= len(said) <= 6, said
    assert said[0].startswith("In the paper's layout at L = 128K (kernel scope, kernel time per device): "
                              "MLA/MLRA-4 = 3 [")
    assert said[0].endswith("so the roofline expects the bytes; the paper measured 2.81× at 128K.")
    assert said[1].startswith("In the paper's layout at L = 128K (kernel scope, kernel time per device): "
                              "GQA/MLRA-4 = 1.3 [")
    # MLRA-4 at t = 1 takes 900 µs, MLA 300 µs: 3×, where the bytes predict 1.00× and the FLOPs
    # 4·64·640 / 139264 = 163840/139264 = 1.176×.
    assert said[2].startswith("At t = 1 and L = 128K (kernel scope): MLRA-4/MLA kernel time = 3 [")
    assert "follows neither the bytes (1.00×) nor the FLOPs (1.18×)" in said[2]
    # MLRA-4: 900 µs at t = 1, 100 µs at t = 4 → 9×, efficiency 2.25.
    assert said[3].startswith("With the work per TP group fixed (1 sequence(s) per group, L = 128K, kernel scope), "
                              "MLRA-4 runs its step 9.00× [")
    assert said[3].endswith("faster at t = 4 than at t = 1 (strong-scaling efficiency 2.25).")
    assert said[-1].startswith("Every one of the ")


# ---- the all-reduce's optional columns ----------------------------------------------------

def test_allreduce_bus_bandwidth_and_the_optional_imbalance(tmp_path):
    rows = [synth.row("mla", "layer", tp=2, kernel_us=90.0, allreduce_us=10.0),
            synth.row("mla", "layer", tp=4, kernel_us=90.0, allreduce_us=10.0)]
    df, _, iv = measure(tmp_path, rows)
    ar = tables.allreduce_table(df, iv)
    d = ar.data.set_index("tp")
    # 4096·4 bytes · 2 calls = 32768 bytes in 10 µs: algbw 3.2768 GB/s; busbw ×2(t−1)/t.
    assert d.loc[2, "busbw GB/s"] == pytest.approx(3.2768) and d.loc[4, "busbw GB/s"] == pytest.approx(3.2768 * 1.5)
    assert d.loc[2, "share %"] == pytest.approx(10.0)
    assert "imbalance µs" not in d and "has no `imbalance_us_median`" in ar.note
    with_imb = [dict(r, imbalance_us_median=2.5) for r in rows]
    p = synth.write_csv(tmp_path / "i.csv", with_imb, columns=synth.COLUMNS + ["imbalance_us_median"])
    loaded = merge.load_sweeps([p])
    assert loaded.warnings == []
    iv = stats.Intervals(loaded.rows)
    df = tables.attach_estimates(tables.collapse_groups(loaded.rows), iv)
    ar = tables.allreduce_table(df, iv)
    assert ar.data["imbalance µs"].tolist() == [2.5, 2.5] and ar.data["imbalance %"].tolist() == [2.5, 2.5]
    assert "is the collective alone" in ar.note
    df, _, iv = measure(tmp_path, [synth.row("mla", tp=2)])
    assert tables.allreduce_table(df, iv).why_empty.startswith("No layer- or model-scope rows at t > 1")


# ---- figures -------------------------------------------------------------------------------

def png_size(path) -> tuple[int, int]:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_no_figure_is_wider_than_3000_pixels(tmp_path):
    # Many facets (scopes × sequences per group × threads) and 72 latency distributions.
    rows = [synth.row(v, scope, tp, L, batch=b, threads=th, kernel_us=100.0 * tp + L / 100)
            for scope in ("kernel", "layer") for v in ("mla", "mlra4", "gqa") for tp in (1, 2, 4)
            for L in (1024, 8192) for b in (1, 2) for th in (1, 2)]
    p = synth.write_csv(tmp_path / "s.csv", rows)
    smp = write_samples(tmp_path / "smp.csv", [(r, [r["step_us_median"]] * 5) for r in rows if r["threads"] == 1])
    out = tmp_path / "r"
    assert cli.main(["report", p, "--samples", smp, "--out", str(out), "--resamples", "200"]) == 0
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 8 and (out / "paper_layout_2.png").exists()   # 8 row groups, 3 to a file
    for png in pngs:
        assert png_size(png)[0] <= 3000, png.name
    text = (out / "report.md").read_text()
    for png in pngs:
        assert f"]({png.name})" in text


def test_tick_labels_are_plain_units():
    from analysis import figures
    assert [tables.tokens_text(n) for n in (1024, 8192, 131072, 1 << 20, 1000)] == ["1K", "8K", "128K", "1M", "1000"]
    assert [figures.time_text(t) for t in (500, 2000, 1.5e6)] == ["500 µs", "2 ms", "1.5 s"]


def test_every_table_has_its_csv_beside_the_report(tmp_path):
    p = synth.write_csv(tmp_path / "s.csv", synth.sweep()[::3])
    out = tmp_path / "r"
    assert cli.main(["report", p, "--out", str(out), "--resamples", "200"]) == 0
    text = (out / "report.md").read_text()
    for name in ("kv_cache", "paper_layout_times", "paper_layout_ratios", "latency", "speedup", "throughput",
                 "efficiency", "scaling", "allreduce", "model_presets", "paper_vs_model", "model_vs_measured",
                 "crossover"):
        assert (out / f"{name}.csv").exists(), name
        assert f"[{name}.csv]({name}.csv)" in text, name
    lat = (out / "latency.csv").read_text().splitlines()[0]
    assert "MLA t=1,MLA t=1 lo,MLA t=1 hi" in lat
