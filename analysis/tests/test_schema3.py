"""Schema 3 (docs/csv-schema.md) added config_id, array_task, array_count,
calib_source and seed; files of schemas 1 and 2 are still read, those columns
empty, without warnings."""

from __future__ import annotations

import synth

from analysis import merge

SCHEMA3 = dict(config_id="00112233aabbccdd", array_task=0, array_count=1, calib_source="measured",
               seed="18446744073709551615")
SCHEMA3_COLUMNS = synth.COLUMNS + list(SCHEMA3)


def test_schema_2_and_3_files_are_read_together(tmp_path):
    v2 = synth.write_csv(tmp_path / "v2.csv", [synth.row("mla")])
    v3 = synth.write_csv(tmp_path / "v3.csv", [synth.row("mlra4", schema_version=3, **SCHEMA3)], columns=SCHEMA3_COLUMNS)
    got = merge.load_sweeps([v2, v3])
    assert got.warnings == []
    by = got.rows.set_index("variant")
    assert by.at["mlra4", "seed"] == "18446744073709551615", "a 64-bit seed is kept exactly"
    assert by.at["mlra4", "calib_source"] == "measured"
    assert all(str(by.at["mla", c]) in ("", "nan") for c in merge.SINCE_SCHEMA_3)
