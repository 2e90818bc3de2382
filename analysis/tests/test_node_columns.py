"""group_nodes and group_hosts (docs/csv-schema.md): where a TP group ran. Files
without them (schema 3 and before) are read without warnings, the columns empty;
an impossible node count is refused like any other impossible cell."""

from __future__ import annotations

import synth
from test_schema3 import SCHEMA3, SCHEMA3_COLUMNS

from analysis import merge

NODE_COLUMNS = SCHEMA3_COLUMNS + merge.NODE_COLUMNS


def test_node_columns_are_read_and_optional(tmp_path):
    old = synth.write_csv(tmp_path / "old.csv", [synth.row("mla", schema_version=3, **SCHEMA3)], columns=SCHEMA3_COLUMNS)
    new = synth.write_csv(tmp_path / "new.csv", [
        synth.row("mlra4", schema_version=3, tp=2, dp=2, tp_group=g, host=f"node{g + 1}",
                  group_nodes=1, group_hosts=f"node{g + 1}", **SCHEMA3) for g in (0, 1)
    ] + [synth.row("gqa", schema_version=3, tp=4, group_nodes=2, group_hosts="node1;node2", **SCHEMA3)], columns=NODE_COLUMNS)
    got = merge.load_sweeps([old, new])
    assert got.warnings == []
    rows = got.rows
    assert list(rows.loc[rows.variant == "mlra4", "group_hosts"]) == ["node1", "node2"], "TP inside nodes, DP across"
    assert list(rows.loc[rows.variant == "gqa", "group_nodes"]) == [2.0]
    assert all(str(v) in ("", "nan") for v in rows.loc[rows.variant == "mla", merge.NODE_COLUMNS].iloc[0])


def test_impossible_node_count_is_refused(tmp_path):
    p = synth.write_csv(tmp_path / "bad.csv", [synth.row("mla", schema_version=3, group_nodes=0, group_hosts="x", **SCHEMA3)],
                        columns=NODE_COLUMNS)
    got = merge.load_sweeps([p])
    assert len(got.warnings) == 1 and "group_nodes='0' is below 1" in got.warnings[0], got.warnings
