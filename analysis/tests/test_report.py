"""The whole report and its figures from a synthetic sweep and samples file."""

import csv

import synth

from analysis import cli

FIGURES = ["latency_vs_context.png", "cache_traffic_vs_tp.png", "roofline.png", "scaling_vs_tp.png",
           "latency_distributions.png", "paper_vs_model.png", "paper_layout.png"]


def write_samples(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run_id", "variant", "scope", "tp", "tp_group", "context", "batch", "n_head", "kv_lora_rank",
                    "kv_dtype", "threads", "timing_mode", "step_index", "step_us", "kernel_us", "allreduce_us"])
        for r in rows:
            for i in range(20):
                t = r["step_us_median"] * (0.9 + 0.01 * i)
                w.writerow([r["run_id"], r["variant"], r["scope"], r["tp"], 0, r["context"], r["batch"], r["n_head"],
                            r["kv_lora_rank"], r["kv_dtype"], 1, "concurrent", i, t, t, ""])


def test_full_report(tmp_path):
    rows = synth.sweep()
    half = len(rows) // 2
    a = synth.write_csv(tmp_path / "job_0.csv", rows[:half])
    b = synth.write_csv(tmp_path / "job_1.csv", rows[half:])
    write_samples(tmp_path / "samples.csv", [r for r in rows if r["context"] == 65536 and r["tp"] == 4])
    out = tmp_path / "report"
    assert cli.main(["report", a, b, "--samples", str(tmp_path / "samples.csv"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    for section in ["## Summary", "## Input", "## 1. Per-device KV cache", "## 2. The paper's layout",
                    "## 3. Decode latency", "## 4. Speedup of MLRA-4", "## 5. Throughput", "## 6. Achieved bandwidth",
                    "## 7. Strong scaling", "## 8. All-reduce share", "### 9a. H100", "### 9b. Local machine",
                    "### 9c. When the MLA", "## 10. Noisy measurements"]:
        assert section in text, section
    assert "All checks agree." in text and "No warnings" in text
    assert "arXiv 2603.02188" in text
    # Which peak and which inner loops produced the rows (schema 2).
    assert "kernel ISA (`kernel_isa`): avx512; FMA peak loop (`calib_fma_width`): avx512" in text
    assert "products (`kernel_math`): f32" in text, "rows before schema 7 ran f32 products"
    # Section 5: the peak is max(sgemm 40, FMA 50) = 50 GFLOP/s, ridge 50/10 = 5 FLOP/byte.
    assert ("compute peak 50.00 GFLOP/s = max(calib_sgemm_gflops, calib_fma_gflops) per row, as in the harness's "
            "`roofline_us` (sgemm 40.00, FMA loop 50.00 GFLOP/s (avx512)); ridge 5.00 FLOP/byte. "
            "Kernel inner loops: avx512.") in text
    assert "| % peak |" in text and "% sgemm" not in text
    # Section 8: the local preset's peak and where it comes from.
    assert "| local | 10 | 50 | 5 |" in text and "max(calib_sgemm_gflops, calib_fma_gflops) (median over rows)" in text
    # The paper's 2M row: MLRA-4 model 240.4 µs vs 308.2 measured; MLA/MLRA-4 paper 874.2/308.2 = 2.84
    assert "| 2M | 2097152 |" in text and "| 240.4 | 308.2 |" in text and "| 2.84 |" in text
    for name in FIGURES:
        png = (out / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, name
        assert f"]({name})" in text
