"""Each table against numbers worked out by hand from the synthetic rows."""

import pandas as pd
import pytest
import synth

from analysis import merge, report, stats, tables


def measured(tmp_path, rows):
    """(configurations with their estimates, merged rows, intervals) of synthetic rows."""
    raw = merge.load_sweeps([synth.write_csv(tmp_path / "s.csv", rows)]).rows
    iv = stats.Intervals(raw)
    return tables.attach_estimates(tables.collapse_groups(raw), iv), raw, iv


def load(tmp_path, rows):
    return measured(tmp_path, rows)[0]


def test_kv_table_values_and_flags(tmp_path):
    rows = [synth.row("mlra4", tp=4), synth.row("gqa", tp=2),
            # a row whose bytes do not equal elems × 2 (bf16): must be flagged
            synth.row("mla", tp=2, kv_bytes_per_token=1000)]
    _, paper_kv = report.load_paper()
    kv = tables.kv_table(load(tmp_path, rows), paper_kv).set_index("variant")
    # MLRA-4 at t=4: one block 128 + rope 64 = 192 elements = 1.5·d_h, 384 bytes in bf16.
    assert kv.loc["MLRA-4", "kv_elems_per_token"] == 192
    assert kv.loc["MLRA-4", "kv_bytes_per_token"] == 384
    assert kv.loc["MLRA-4", "paper_in_d_h"] == 1.5
    assert kv.loc["MLRA-4", "check"] == "ok"
    # GQA n_kv 8 at t=2: 4 KV heads · K and V · 128 = 1024 elements = 8·d_h.
    assert kv.loc["GQA", "kv_elems_per_token"] == 1024
    assert kv.loc["GQA", "paper_in_d_h"] == 8
    assert "MISMATCH" in kv.loc["MLA", "check"] and "≠ bytes 1000" in kv.loc["MLA", "check"]


def test_kv_table_flags_plan_and_paper_disagreement(tmp_path):
    # GLA-2 at t=2 should hold 256 + 64 = 320 elements; a harness claiming 576 is wrong twice.
    bad = synth.row("gla2", tp=2, kv_elems_per_token=576, kv_bytes_per_token=1152)
    _, paper_kv = report.load_paper()
    check = tables.kv_table(load(tmp_path, [bad]), paper_kv)["check"].iloc[0]
    assert "method §4 plan gives 320" in check and "paper Table 1 gives 2.5·d_h = 320" in check


def test_latency_speedup_throughput(tmp_path):
    rows = [synth.row("mlra4", tp=2, context=1024, kernel_us=100.0),
            synth.row("mla", tp=2, context=1024, kernel_us=300.0),
            synth.row("gla2", tp=2, context=1024, kernel_us=150.0),
            synth.row("gqa", tp=2, context=1024, kernel_us=120.0),
            synth.row("mlra4", tp=2, context=4096, kernel_us=400.0),
            synth.row("mla", tp=2, context=4096, kernel_us=1000.0)]
    df, _, iv = measured(tmp_path, rows)
    lat = tables.latency_table(df, iv).data.set_index("context")
    assert lat.loc[1024, "MLRA-4 t=2"] == 100.0 and lat.loc[4096, "MLA t=2"] == 1000.0
    sp = tables.speedup_table(df, iv).data.set_index("context")
    assert sp.loc[1024, "MLA/MLRA-4"] == pytest.approx(3.0)       # 300/100
    assert sp.loc[1024, "GLA-2/MLRA-4"] == pytest.approx(1.5)     # 150/100
    assert sp.loc[1024, "GQA/MLRA-4"] == pytest.approx(1.2)       # 120/100
    assert sp.loc[4096, "MLA/MLRA-4"] == pytest.approx(2.5)       # 1000/400
    assert pd.isna(sp.loc[4096, "GQA/MLRA-4"])                    # no GQA row at 4096
    tput = tables.throughput_table(df, iv).data.set_index("context")
    assert tput.loc[1024, "MLRA-4 t=2"] == pytest.approx(10_000)  # 1 token / 100 µs


def efficiency(tmp_path, rows):
    df, raw, iv = measured(tmp_path, rows)
    return tables.efficiency_table(df, raw, iv).data.iloc[0]


def test_efficiency(tmp_path):
    # MLRA-4 t=4, L=1024, bf16: bytes 1024·384 = 393216, FLOPs 1024·64·640 = 41943040, kernel 100 µs
    #   GB/s = 393216/100 µs/1e3 = 3.93216; GFLOP/s = 419.43; FLOP/B = 106.67
    #   peak = max(sgemm 40, FMA 50) = 50 GFLOP/s (synth.CALIB)
    #   roofline = max(393216/1e4, 41943040/5e4) = max(39.3216, 838.8608) = 838.8608 µs
    #   → fraction 838.8608/100 = 8.388608 (synthetic, too fast)
    eff = efficiency(tmp_path, [synth.row("mlra4", tp=4, kernel_us=100.0)])
    assert eff["GB/s"] == pytest.approx(3.93216)
    assert eff["GFLOP/s"] == pytest.approx(419.43040)
    assert eff["FLOP/byte"] == pytest.approx(106.6667, abs=1e-3)
    assert eff["% read BW"] == pytest.approx(100 * 3.93216 / 10)       # 39.3216
    assert eff["% peak"] == pytest.approx(100 * 419.4304 / 50)         # 838.8608
    assert eff["roofline_fraction"] == pytest.approx(838.8608 / 100)   # 8.388608
    assert eff["bound"] == "compute"  # 106.7 > ridge 50/10 = 5
    assert eff["check"] == "**faster than the measured roof**"
    bad = synth.row("mla", kernel_us=2e5, achieved_gbs=99.0)  # true rate 1024·1152 B / 2e5 µs = 0.0059 GB/s
    eff = efficiency(tmp_path, [bad])
    assert eff["check"] == "GB/s ≠ bytes/time (0.005898)"


def test_efficiency_peak_is_the_fma_figure_when_it_exceeds_sgemm(tmp_path):
    # The row of test_efficiency (419.4304 GFLOP/s, 106.67 FLOP/B) on a machine whose FMA loop
    # reaches 2000 GFLOP/s, sgemm 40: peak = max(40, 2000) = 2000, as in the harness's roofline_us.
    #   % peak = 100·419.4304/2000 = 20.97152 (against sgemm it would be 1048.576)
    #   ridge = 2000/10 = 200 FLOP/B > 106.67 → bandwidth-bound (against sgemm: 4 → compute)
    #   roofline = max(393216/1e4, 41943040/2e6) = max(39.3216, 20.97152) = 39.3216 µs → fraction 0.393216
    eff = efficiency(tmp_path, [synth.row("mlra4", tp=4, kernel_us=100.0, calib_fma_gflops=2000.0)])
    assert eff["% peak"] == pytest.approx(100 * 419.4304 / 2000)
    assert eff["bound"] == "bandwidth"
    assert eff["roofline_fraction"] == pytest.approx(39.3216 / 100)
    assert eff["check"] == "ok"


def test_efficiency_peak_falls_back_to_sgemm_without_fma(tmp_path):
    # An empty calib_fma_gflops: peak = sgemm 40.
    #   % peak = 100·419.4304/40 = 1048.576; ridge 40/10 = 4 < 106.67 → compute-bound
    #   roofline = max(393216/1e4, 41943040/4e4) = 1048.576 µs → fraction 10.48576
    eff = efficiency(tmp_path, [synth.row("mlra4", tp=4, kernel_us=100.0, calib_fma_gflops="")])
    assert eff["% peak"] == pytest.approx(100 * 419.4304 / 40)
    assert eff["bound"] == "compute"
    assert eff["roofline_fraction"] == pytest.approx(1048.576 / 100)


def test_scaling_and_allreduce_share(tmp_path):
    rows = [synth.row("mla", "layer", tp=1, kernel_us=1000.0),
            synth.row("mla", "layer", tp=2, kernel_us=575.0, allreduce_us=25.0),   # step 600
            synth.row("mla", "layer", tp=4, kernel_us=300.0, allreduce_us=100.0)]  # step 400
    df, _, iv = measured(tmp_path, rows)
    sc = tables.scaling_table(df, iv).data.set_index("tp")
    assert sc.loc[2, "speedup"] == pytest.approx(1000 / 600)
    assert sc.loc[2, "efficiency"] == pytest.approx(1000 / (2 * 600))   # 0.8333
    assert sc.loc[4, "efficiency"] == pytest.approx(1000 / (4 * 400))   # 0.625
    ar = tables.allreduce_table(df, iv).data.set_index("tp")
    assert ar.loc[2, "share %"] == pytest.approx(25 / 600 * 100)        # 4.1667 %
    assert ar.loc[4, "share %"] == pytest.approx(25.0)                  # 100/400


def test_scaling_matches_sequences_per_group(tmp_path):
    # t=2 with dp=2 and batch 2 runs one sequence per group: compared with t=1, batch 1.
    rows = [synth.row("mlra4", tp=1, batch=1, kernel_us=800.0),
            synth.row("mlra4", tp=2, batch=2, dp=2, tp_group=0, kernel_us=500.0),
            synth.row("mlra4", tp=2, batch=2, dp=2, tp_group=1, kernel_us=300.0, host="node2")]
    df, _, iv = measured(tmp_path, rows)
    sc = tables.scaling_table(df, iv).data.set_index("tp")
    # the two groups collapse to the median of their medians, 400 µs: efficiency 800/(2·400) = 1.0
    assert sc.loc[2, "step µs"] == 400.0 and sc.loc[2, "efficiency"] == pytest.approx(1.0)
