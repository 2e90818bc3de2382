"""Merging many CSVs, de-duplication and malformed input."""

import pytest
import synth

from analysis import cli, merge


def test_concat_and_exact_duplicates(tmp_path):
    a = synth.write_csv(tmp_path / "a.csv", [synth.row("mla"), synth.row("mlra4")])
    b = synth.write_csv(tmp_path / "b.csv", [synth.row("mla"), synth.row("gqa")])  # mla row repeated exactly
    got = merge.load_sweeps([a, b])
    assert sorted(got.rows["variant"]) == ["gqa", "mla", "mlra4"]
    assert any("1 exact duplicate" in n for n in got.notes)
    assert got.warnings == []


def test_reruns_are_kept_and_merged_into_one_configuration(tmp_path):
    old = synth.row("mla", kernel_us=500.0, date="2026-01-01T00:00:00Z", run_id="a")
    new = synth.row("mla", kernel_us=400.0, date="2026-02-01T00:00:00Z", run_id="b")
    p = synth.write_csv(tmp_path / "r.csv", [new, old])
    got = merge.load_sweeps([p])
    assert sorted(got.rows["step_us_median"]) == [400.0, 500.0]
    assert got.rows["_config"].nunique() == 1
    assert any("kept 2 row(s) measuring 1 configuration(s) more than once" in n for n in got.notes)


def test_a_row_written_twice_by_one_run_keeps_the_latest(tmp_path):
    old = synth.row("mla", kernel_us=500.0, date="2026-01-01T00:00:00Z", run_id="a")
    new = synth.row("mla", kernel_us=400.0, date="2026-02-01T00:00:00Z", run_id="a")
    got = merge.load_sweeps([synth.write_csv(tmp_path / "r.csv", [new, old])])   # newest first: order must not matter
    assert len(got.rows) == 1 and got.rows["step_us_median"].iloc[0] == 400.0
    assert any("kept the latest by date_utc" in n for n in got.notes)


def test_a_repeat_column_tells_repeats_of_one_run_apart(tmp_path):
    rows = [synth.row("mla", kernel_us=k, run_id="a", repeat=i) for i, k in enumerate((400.0, 500.0, 450.0))]
    got = merge.load_sweeps([synth.write_csv(tmp_path / "r.csv", rows, columns=synth.COLUMNS + ["repeat"])])
    assert len(got.rows) == 3 and got.warnings == []
    # Without the column (today's CSVs) nothing is warned about either.
    assert merge.load_sweeps([synth.write_csv(tmp_path / "s.csv", rows[:1])]).warnings == []


def test_glob_pattern_expanded(tmp_path):
    for i in range(3):
        synth.write_csv(tmp_path / f"job_{i}.csv", [synth.row("mlra4", context=1024 * (i + 1))])
    got = merge.load_sweeps([str(tmp_path / "job_*.csv")])
    assert len(got.files) == 3 and len(got.rows) == 3


def test_malformed_inputs_warn_and_keep_the_rest(tmp_path, capsys):
    good = synth.write_csv(tmp_path / "good.csv", [synth.row("mlra4"), synth.row("mla")])
    bad_rows = synth.write_csv(tmp_path / "bad_rows.csv", [
        synth.row("gqa", step_us_median="fast"),            # malformed required value
        synth.row("gla2", achieved_gbs="n/a"),              # malformed optional value: kept, cell empty
        synth.row("mlra2", schema_version=99),               # another schema
        dict(synth.row("mha"), kv_dtype="fp8"),             # unknown dtype
    ])
    missing = synth.write_csv(tmp_path / "missing.csv", [synth.row("mqa")],
                              columns=[c for c in synth.COLUMNS if c != "step_us_median"])
    (tmp_path / "binary.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (tmp_path / "notes.txt").write_text("hello, world\n1, 2\n")
    with open(tmp_path / "ragged.csv", "w") as f:
        f.write(",".join(synth.COLUMNS) + "\n1,2,3\n")
    files = [good, bad_rows, missing, str(tmp_path / "binary.csv"), str(tmp_path / "notes.txt"),
             str(tmp_path / "ragged.csv")]
    out = tmp_path / "rep"
    assert cli.main(["report", *files, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    for needle in ["'fast' is not a number; row skipped", "'n/a' is not a number; cell left empty",
                   "schema_version='99'", "kv_dtype='fp8' unknown", "missing required column(s) step_us_median",
                   "binary.csv: not a readable text CSV", "notes.txt: not a sweep CSV",
                   "ragged.csv:2: 3 fields"]:
        assert needle in err, needle
    text = (out / "report.md").read_text()
    assert "warning(s)" in text and "'fast' is not a number" in text
    assert "| MLRA-4 | 4" not in text  # sanity: only what was given
    loaded = merge.load_sweeps(files)
    assert sorted(loaded.rows["variant"]) == ["gla2", "mla", "mlra4"]


def test_schema_1_files_are_read_with_the_schema_2_columns_empty(tmp_path):
    v1 = synth.write_csv(tmp_path / "v1.csv", [synth.row("mla", schema_version=1, context=2048)],
                         columns=synth.SCHEMA1_COLUMNS)
    v2 = synth.write_csv(tmp_path / "v2.csv", [synth.row("mlra4", kernel_isa="portable", calib_fma_width="avx2")])
    got = merge.load_sweeps([v1, v2])
    assert got.warnings == []   # schema 1 never had calib_fma_width / kernel_isa: nothing to warn about
    by = got.rows.set_index("variant")
    assert (by.at["mlra4", "kernel_isa"], by.at["mlra4", "calib_fma_width"]) == ("portable", "avx2")
    assert all(str(by.at["mla", c]) in ("", "nan") for c in merge.SINCE_SCHEMA_2)
    # A schema-2 file without them is warned about.
    short = synth.write_csv(tmp_path / "short.csv", [synth.row("gqa")], columns=synth.SCHEMA1_COLUMNS)
    assert any("missing column(s) calib_fma_width, kernel_isa" in w for w in merge.load_sweeps([short]).warnings)


def test_fatal_cases_one_line(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.csv: no such file" in err[0]
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    assert cli.main(["report", str(junk), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("analysis: error: no usable rows")
    with pytest.raises(merge.InputError):
        merge.load_sweeps([str(tmp_path / "none_*.csv")])
