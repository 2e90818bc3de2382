"""Schema 4 (docs/csv-schema.md) added the device a row ran on (part of the resume key),
the GPU's identity and the GPU calibration of cuda rows. Files of schema 3 (and older)
are still read beside schema-4 files, their rows as cpu rows; cpu and cuda rows of one
configuration are two measurements; the report gives cuda rows their own section."""

from __future__ import annotations

import synth
from test_schema3 import SCHEMA3, SCHEMA3_COLUMNS

from analysis import merge, report

GPU = dict(device="cuda", gpu_kernel="mma tile 64 stages 3 splits 132", gpu_name="NVIDIA H200",
           gpu_uuid="GPU-00000000-1111-2222-3333-444444444444", gpu_pci_bus_id="00000000:19:00.0",
           gpu_driver="580.65.06", gpu_sm_clock_mhz=1980, gpu_mem_clock_mhz=3201, gpu_ranks_sharing=1,
           gpu_calib_read_gbs=4200.0, gpu_calib_copy_gbs=4230.0, gpu_calib_tensor_tflops=660.0,
           gpu_calib_fma_tflops=60.0, calib_source="gpu-file:0123456789abcdef", kernel_isa="",
           calib_read_gbs="", calib_triad_gbs="", calib_sgemm_gflops="", calib_fma_gflops="", calib_fma_width="")
SCHEMA4_COLUMNS = SCHEMA3_COLUMNS + [c for c in GPU if c not in SCHEMA3_COLUMNS]


def v4(variant="mlra4", gpu=False, **over):
    """A schema-4 row: a cpu row, or (gpu) the same configuration's cuda row."""
    r = {**synth.row(variant, **over), "schema_version": 4, **SCHEMA3, "device": "cpu"}
    return {**r, **(GPU if gpu else {}), **over}


def test_schema_3_and_4_files_are_read_together(tmp_path):
    old = synth.write_csv(tmp_path / "v3.csv", [synth.row("mla", schema_version=3, **SCHEMA3)], columns=SCHEMA3_COLUMNS)
    new = synth.write_csv(tmp_path / "v4.csv", [v4("mlra4"), v4("gqa", gpu=True)], columns=SCHEMA4_COLUMNS)
    got = merge.load_sweeps([old, new])
    assert got.warnings == []
    by = got.rows.set_index("variant")
    assert by.at["mla", "device"] == "cpu", "a schema-3 row ran on the CPU"
    assert by.at["mlra4", "device"] == "cpu"
    assert by.at["gqa", "device"] == "cuda"
    assert by.at["gqa", "gpu_name"] == "NVIDIA H200"
    assert float(by.at["gqa", "gpu_calib_read_gbs"]) == 4200.0
    assert all(str(by.at["mla", c]) in ("", "nan") for c in merge.SINCE_SCHEMA_4 if c != "device")


def test_cpu_and_cuda_rows_of_one_configuration_are_both_kept(tmp_path):
    f = synth.write_csv(tmp_path / "r.csv", [v4("mla"), v4("mla", gpu=True)], columns=SCHEMA4_COLUMNS)
    got = merge.load_sweeps([f])
    assert sorted(got.rows["device"]) == ["cpu", "cuda"], got.notes


def test_a_schema_4_rerun_of_a_schema_3_row_replaces_it(tmp_path):
    old = synth.write_csv(tmp_path / "v3.csv", [synth.row("mla", schema_version=3, date="2026-01-01T00:00:00Z", **SCHEMA3)],
                          columns=SCHEMA3_COLUMNS)
    new = synth.write_csv(tmp_path / "v4.csv", [v4("mla", date="2026-02-01T00:00:00Z", kernel_us=90.0)], columns=SCHEMA4_COLUMNS)
    got = merge.load_sweeps([old, new])
    assert len(got.rows) == 1 and float(got.rows["kernel_us_median"].iloc[0]) == 90.0, got.notes


def test_an_unknown_device_is_a_warning_and_the_row_is_skipped(tmp_path):
    f = synth.write_csv(tmp_path / "r.csv", [v4("mla"), v4("mlra4", device="tpu")], columns=SCHEMA4_COLUMNS)
    got = merge.load_sweeps([f])
    assert list(got.rows["variant"]) == ["mla"]
    assert any("device='tpu' unknown; row skipped" in w for w in got.warnings), got.warnings


def test_the_report_gives_cuda_rows_their_own_section(tmp_path):
    rows = [{**r, "schema_version": 4, **SCHEMA3, "device": "cpu"} for r in synth.sweep()]
    rows += [v4("mlra4", gpu=True, context=L, kernel_us=50.0, step_us=60.0) for L in (1024, 8192)]
    f = synth.write_csv(tmp_path / "r.csv", rows, columns=SCHEMA4_COLUMNS)
    text = open(report.build(merge.load_sweeps([f]), str(tmp_path / "out")), encoding="utf-8").read()
    assert "## 1. Per-device KV cache" in text and "## 11. GPU kernel rows (device cuda)" in text
    gpu = text.split("## 11.")[1]
    assert "NVIDIA H200" in gpu and "| 10 |" in gpu, "launch µs = step − graph replay = 60 − 50"
    # Only cuda rows: the GPU section alone, no CPU roofline built from empty CPU calibrations.
    g = synth.write_csv(tmp_path / "g.csv", [v4("mlra4", gpu=True)], columns=SCHEMA4_COLUMNS)
    only = open(report.build(merge.load_sweeps([g]), str(tmp_path / "g")), encoding="utf-8").read()
    assert "## 11. GPU kernel rows" in only and "## 1." not in only
