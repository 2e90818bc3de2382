"""Schema 7 (docs/csv-schema.md) adds `kernel_math` (the math the CPU kernel's products ran
in: f32, or bf16 under `--math auto`), part of the resume key, the check's tolerance
(`validation_atol`, `validation_rtol`), `collective` (the all-reduce's library, part of the
resume key) and `allreduce_path`. Older cpu rows were all f32 math and every older row used
MPI, and they read so: a schema-6 row and the same configuration rerun in schema 7 are one
configuration."""

from __future__ import annotations

import synth
from test_schema6 import SCHEMA6_COLUMNS, groups

from analysis import merge

SCHEMA7_COLUMNS = SCHEMA6_COLUMNS + merge.SINCE_SCHEMA_7
NEW = {"collective": "mpi", "allreduce_path": "mpi-host"}


def test_older_cpu_rows_read_as_f32_math_and_bf16_rows_are_their_own_configuration(tmp_path):
    old = synth.write_csv(tmp_path / "v6.csv", groups(6), columns=SCHEMA6_COLUMNS)
    f32 = [{**r, **NEW, "kernel_math": "f32", "validation_atol": 1e-5, "validation_rtol": 1e-4} for r in groups(7, run_id="r2")]
    bf16 = [{**r, **NEW, "kernel_math": "bf16", "validation_atol": 3e-3, "validation_rtol": 2e-2} for r in groups(7, run_id="r3")]
    new = synth.write_csv(tmp_path / "v7.csv", f32 + bf16, columns=SCHEMA7_COLUMNS)
    got = merge.load_sweeps([old, new])
    assert got.warnings == [], "neither file lacks a column of its own schema"
    assert "kernel_math" in merge.CONFIG_KEY and "collective" in merge.CONFIG_KEY
    version = got.rows["schema_version"].astype(str).str.strip()
    assert list(got.rows.loc[version == "6", "kernel_math"].unique()) == ["f32"]
    assert sorted(got.rows.loc[version == "7", "kernel_math"].unique()) == ["bf16", "f32"]
    assert set(got.rows["collective"]) == {"mpi"}
    assert set(got.rows["allreduce_path"]) == {"", "mpi-host"}
    # The schema-6 and schema-7 f32 rows are one configuration; the bf16 rows another.
    keys = got.rows.groupby(merge.MEASUREMENT_KEY, dropna=False).ngroups
    assert keys == 2


def test_nccl_rows_are_another_configuration(tmp_path):
    rows = [{**r, "kernel_math": "f32", "validation_atol": 1e-5, "validation_rtol": 1e-4, "collective": c, "allreduce_path": p}
            for c, p in (("mpi", "mpi-host-staged"), ("nccl", "nccl-2.28.3")) for r in groups(7, run_id=c)]
    f = synth.write_csv(tmp_path / "v7.csv", rows, columns=SCHEMA7_COLUMNS)
    got = merge.load_sweeps([f])
    assert got.warnings == []
    assert got.rows.groupby(merge.MEASUREMENT_KEY, dropna=False).ngroups == 2, "the collective is part of what was measured"
