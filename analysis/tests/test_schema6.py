"""Schema 6 (docs/csv-schema.md) split `tokens_per_s`, the job's total repeated on every
TP group's row, into `group_tokens_per_s` and `job_tokens_per_s`. Older files are still
read: their `tokens_per_s` is the job's figure, the group's is derived from the step."""

from __future__ import annotations

import pytest
import synth
from test_schema4 import SCHEMA4_COLUMNS, v4

from analysis import merge

SCHEMA5_COLUMNS = SCHEMA4_COLUMNS + merge.NOISE_ROW_COLUMNS + merge.NODE_COLUMNS
SCHEMA6_COLUMNS = [c for c in SCHEMA5_COLUMNS if c != "tokens_per_s"] + merge.THROUGHPUT_COLUMNS
NODE = dict(noise_cv_max=0.01, noise_lost_fraction_max=0.0, noise_top_hz=250.0, group_nodes=1, group_hosts="node1")


def groups(version, **over):
    """One configuration at tp 2 × dp 2, batch 4: two rows, one per TP group (100 µs steps)."""
    rows = []
    for g in (0, 1):
        r = {**v4("mlra4", tp=2, dp=2, batch=4, tp_group=g, kernel_us=90.0, allreduce_us=10.0, scope="layer", **over),
             **NODE, "schema_version": version}
        job = r.pop("tokens_per_s")   # the job's total: 4 sequences / 100 µs
        rows.append({**r, "tokens_per_s": job} if version < 6 else {**r, "group_tokens_per_s": job / 2, "job_tokens_per_s": job})
    return rows


def test_old_and_new_files_give_the_same_figures(tmp_path):
    old = synth.write_csv(tmp_path / "v5.csv", groups(5), columns=SCHEMA5_COLUMNS)
    new = synth.write_csv(tmp_path / "v6.csv", groups(6, run_id="r2"), columns=SCHEMA6_COLUMNS)
    got = merge.load_sweeps([old, new])
    assert got.warnings == [], "neither file lacks a column of its own schema"
    assert "tokens_per_s" not in got.rows.columns, "read under one name"
    for _, r in got.rows.iterrows():
        assert r["job_tokens_per_s"] == pytest.approx(4 / 100e-6)
        assert r["group_tokens_per_s"] == pytest.approx(2 / 100e-6), r["schema_version"]
    # The job's figure is the sum of the groups', once per configuration and run.
    for _, run in got.rows.groupby("run_id"):
        assert run["group_tokens_per_s"].sum() == pytest.approx(run["job_tokens_per_s"].iloc[0])


def test_a_negative_group_figure_is_refused_like_any_rate(tmp_path):
    rows = groups(6)
    rows[1]["group_tokens_per_s"] = -1
    f = synth.write_csv(tmp_path / "bad.csv", rows, columns=SCHEMA6_COLUMNS)
    got = merge.load_sweeps([f])
    assert got.warnings == [f"{f}:3: group_tokens_per_s='-1' is negative; cell left empty"], got.warnings
