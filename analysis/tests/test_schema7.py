"""Schema 7 (docs/csv-schema.md) adds `collective` (the all-reduce's library, part of the
resume key) and `allreduce_path`. Older files are still read, their rows as MPI rows, so a
schema-6 row and the same configuration rerun in schema 7 with MPI are one configuration."""

from __future__ import annotations

import synth
from test_schema6 import SCHEMA6_COLUMNS, groups

from analysis import merge

SCHEMA7_COLUMNS = SCHEMA6_COLUMNS + merge.COLLECTIVE_COLUMNS


def test_old_rows_read_as_mpi_and_share_the_key_of_new_mpi_rows(tmp_path):
    old = synth.write_csv(tmp_path / "v6.csv", groups(6), columns=SCHEMA6_COLUMNS)
    new_rows = [{**r, "collective": "mpi", "allreduce_path": "mpi-host"} for r in groups(7, run_id="r2")]
    new = synth.write_csv(tmp_path / "v7.csv", new_rows, columns=SCHEMA7_COLUMNS)
    got = merge.load_sweeps([old, new])
    assert got.warnings == [], "neither file lacks a column of its own schema"
    assert set(got.rows["collective"]) == {"mpi"}
    assert set(got.rows["allreduce_path"]) == {"", "mpi-host"}
    keys = got.rows[merge.MEASUREMENT_KEY].astype(str).drop_duplicates()
    assert len(keys) == 1, "the rerun is the same configuration"


def test_nccl_rows_are_another_configuration(tmp_path):
    rows = [{**r, "collective": c, "allreduce_path": p}
            for c, p in (("mpi", "mpi-host-staged"), ("nccl", "nccl-2.28.3")) for r in groups(7, run_id=c)]
    f = synth.write_csv(tmp_path / "v7.csv", rows, columns=SCHEMA7_COLUMNS)
    got = merge.load_sweeps([f])
    assert got.warnings == []
    keys = got.rows[merge.MEASUREMENT_KEY].astype(str).drop_duplicates()
    assert len(keys) == 2, "the collective is part of what was measured"
