import pandas as pd
import pytest

from analysis import model


def test_hand_worked_step():
    # 1 MB of cache and 8 MFLOP on a 10 GB/s, 40 GFLOP/s machine (1 GB/s = 1e3 B/µs):
    #   memory  1e6 B / 1e4 B/µs   = 100 µs
    #   compute 8e6 / 4e4 FLOP/µs  = 200 µs   → kernel = max = 200 µs, compute-bound
    #   weights 1e5 B / 1e4 B/µs   =  10 µs
    #   all-reduce at t = 4: 2 calls · 3 µs + 2·(3/4)·40960 B / (20 GB/s = 2e4 B/µs) = 6 + 3.072 = 9.072 µs
    #   step = 200 + 10 + 9.072 = 219.072 µs
    hw = model.Hardware("toy", bandwidth_gbs=10, peak_gflops=40, ar_latency_us=3, ar_bandwidth_gbs=20)
    p = model.predict(1e6, 8e6, hw, weight_bytes=1e5, ar_bytes=40960, ar_count=2, tp=4)
    assert p["kernel_us"] == pytest.approx(200.0)
    assert p["weights_us"] == pytest.approx(10.0)
    assert p["allreduce_us"] == pytest.approx(9.072)
    assert p["step_us"] == pytest.approx(219.072)
    assert p["bound"] == "compute"
    # No all-reduce at t = 1, whatever the columns say.
    assert model.predict(1e6, 1e5, hw, ar_bytes=40960, ar_count=2, tp=1)["allreduce_us"] == 0


def test_paper_shapes_give_spec_ideal_at_2m():
    # method §6: bytes / 3.35 TB/s at 2M = 2·2^20 tokens is 240 µs for MLRA-4, 721 µs for MLA.
    #   MLRA-4: 2097152 · (128 + 64) · 2 B = 805306368 B / 3.35e6 B/µs = 240.39 µs
    #   MLA:    2097152 · (512 + 64) · 2 B = 2415919104 B / 3.35e6 B/µs = 721.17 µs
    b, f = model.paper_shape_cost("mlra4", 2097152)
    assert b == 805306368
    assert f == 2097152 * 64 * (2 * (128 + 64) + 2 * 128)
    assert model.predict(b, f, model.H100)["kernel_us"] == pytest.approx(240.39, abs=0.01)
    b, f = model.paper_shape_cost("mla", 2097152)
    assert model.predict(b, f, model.H100)["kernel_us"] == pytest.approx(721.17, abs=0.01)
    # Intensity 64·640/384 = 106.7 FLOP/B < ridge 989.4e12/3.35e12 = 295.3: bandwidth-bound.
    assert model.predict(b, f, model.H100)["bound"] == "bandwidth"
    assert model.H100.ridge == pytest.approx(295.34, abs=0.01)


def test_crossover_heads():
    # H* = ridge·(d_l + d_r)·b/(4·d_l + 2·d_r); MLA bf16 on H100: 295.343·576·2/2176 = 156.36
    assert model.crossover_heads(model.H100, 512, 64, 2) == pytest.approx(156.36, abs=0.01)
    # A 4 FLOP/B CPU at f32: 4·576·4/2176 = 4.235 heads
    cpu = model.Hardware("cpu", 10, 40, 1, 10)
    assert model.crossover_heads(cpu, 512, 64, 4) == pytest.approx(4.235, abs=0.001)


@pytest.mark.parametrize("variant,tp,elems", [
    ("mha", 1, 128 * 128), ("mha", 8, 16 * 128), ("gqa", 8, 2 * 128), ("gqa", 16, 2 * 128),
    ("mla", 8, 576), ("gla2", 1, 576), ("gla2", 2, 320), ("gla2", 8, 320),
    ("mlra4", 1, 576), ("mlra4", 2, 320), ("mlra4", 4, 192), ("mlra4", 8, 192),
    ("mlra2", 2, 320), ("mlra2", 4, 192),
])
def test_kv_elems_match_table1(variant, tp, elems):
    import synth
    s = synth.shape(variant)
    assert model.kv_elems_per_token(variant, tp, s["head_dim"], s["rope_dim"], s["kv_lora_rank"],
                                    s["block_width"], s["kv_heads"]) == elems


def test_local_preset_fits_allreduce():
    # all-reduce_us = 2 µs per call + ring bytes / 5 GB/s, exactly; the fit must recover both.
    rows = []
    for tp, nbytes, calls in [(2, 1e5, 1), (4, 4e5, 2), (8, 1e6, 4), (2, 2e6, 1)]:
        ring = 2 * (tp - 1) / tp * nbytes
        rows.append(dict(tp=tp, allreduce_bytes_per_step=nbytes, allreduce_count_per_step=calls,
                         allreduce_us_median=2 * calls + ring / 5e3, calib_read_gbs=10.0,
                         calib_sgemm_gflops=40.0, calib_triad_gbs=8.0))
    hw = model.local_preset(pd.DataFrame(rows))
    assert hw.ar_latency_us == pytest.approx(2.0)
    assert hw.ar_bandwidth_gbs == pytest.approx(5.0)
    assert (hw.bandwidth_gbs, hw.peak_gflops) == (10.0, 40.0)


def test_local_preset_peak_is_max_of_sgemm_and_fma():
    # The harness's roofline peak per row is max(calib_sgemm_gflops, calib_fma_gflops); the
    # preset takes the median of that over rows. Rows: max(40, 90) = 90, max(40, 90) = 90,
    # max(40, 30) = 40 → median 90 (the median of sgemm alone would be 40).
    base = dict(tp=1, allreduce_bytes_per_step=0, allreduce_count_per_step=0, allreduce_us_median=float("nan"),
                calib_read_gbs=10.0, calib_triad_gbs=8.0, calib_sgemm_gflops=40.0)
    rows = pd.DataFrame([dict(base, calib_fma_gflops=f) for f in (90.0, 90.0, 30.0)])
    assert model.compute_peak_gflops(rows).tolist() == [90.0, 90.0, 40.0]
    hw = model.local_preset(rows)
    assert hw.peak_gflops == 90.0
    assert hw.ridge == pytest.approx(90.0 / 10.0)
    assert "max(calib_sgemm_gflops, calib_fma_gflops)" in hw.source


def test_compute_peak_falls_back_to_sgemm_when_fma_is_missing():
    # An empty FMA figure (NaN), or no calib_fma_gflops column at all: the peak is sgemm.
    rows = pd.DataFrame([dict(calib_sgemm_gflops=40.0, calib_fma_gflops=float("nan")),
                         dict(calib_sgemm_gflops=40.0, calib_fma_gflops=50.0)])
    assert model.compute_peak_gflops(rows).tolist() == [40.0, 50.0]   # max(40, –) = 40; max(40, 50) = 50
    assert model.compute_peak_gflops(rows[["calib_sgemm_gflops"]]).tolist() == [40.0, 40.0]
    base = dict(tp=1, allreduce_bytes_per_step=0, allreduce_count_per_step=0, allreduce_us_median=float("nan"),
                calib_read_gbs=10.0, calib_triad_gbs=8.0, calib_sgemm_gflops=40.0, calib_fma_gflops=float("nan"))
    assert model.local_preset(pd.DataFrame([base])).peak_gflops == 40.0
