"""Issue 17, analysis part: hostile CSVs cost only what is bad in them. One bad line
is skipped alone, impossible values are refused with file, line and column, text is
escaped in the Markdown, existing paths are taken literally, and nothing crashes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import synth
from analysis import merge

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, so a traceback cannot hide."""
    return subprocess.run([sys.executable, "-m", "analysis", "report", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def lines_of(path) -> list[str]:
    with open(path, newline="") as f:
        return f.read().splitlines(keepends=True)


def test_unbalanced_quote_costs_only_its_line(tmp_path):
    rows = [synth.row(v, context=L) for v in ("mla", "mlra4", "gqa") for L in (1024, 2048)]
    good = lines_of(synth.write_csv(tmp_path / "good.csv", rows))
    p = tmp_path / "quote.csv"
    p.write_text("".join(good[:3] + ['"x\n'] + good[3:]))   # header, 2 rows, the stray line 4, 4 rows
    got = merge.load_sweeps([str(p)])
    assert len(got.rows) == len(rows)
    assert len(got.warnings) == 1 and got.warnings[0].startswith(f"{p}:4: "), got.warnings
    assert sorted(got.rows["_line"]) == [2, 3, 5, 6, 7, 8]


def test_existing_file_name_with_glob_characters_is_taken_literally(tmp_path):
    literal = synth.write_csv(tmp_path / "job[1].csv", [synth.row("mla")])
    assert merge.load_sweeps([literal]).files == [literal]
    # A pattern that is not an existing path is still a glob: job[12].csv matches job1.csv.
    synth.write_csv(tmp_path / "job1.csv", [synth.row("mlra4")])
    assert merge.load_sweeps([str(tmp_path / "job[12].csv")]).files == [str(tmp_path / "job1.csv")]


@pytest.mark.parametrize("col, value, why, outcome", [
    ("step_us_median", "0", "is not above 0", "row skipped"),
    ("step_us_median", "-3", "is not above 0", "row skipped"),
    ("step_us_median", "inf", "is not finite", "row skipped"),
    ("step_us_median", "-inf", "is not finite", "row skipped"),
    ("step_us_median", "nan", "is not a number", "row skipped"),
    ("tp", "0", "is below 1", "row skipped"),
    ("tp", "1.5", "is not a whole number", "row skipped"),
    ("context", "99999999999999999999", "is beyond 9007199254740992", "row skipped"),   # 2^53
    ("kernel_us_median", "0", "is not above 0", "cell left empty"),
    ("achieved_gbs", "inf", "is not finite", "cell left empty"),
    ("allreduce_us_median", "-1", "is negative", "cell left empty"),
    ("calib_read_gbs", "0", "is not above 0", "cell left empty"),
])
def test_impossible_values_are_refused_naming_file_line_and_column(tmp_path, col, value, why, outcome):
    rows = [synth.row("mla", context=1024), dict(synth.row("mla", context=2048), **{col: value}),
            synth.row("mla", context=4096)]
    p = synth.write_csv(tmp_path / "v.csv", rows)
    got = merge.load_sweeps([p])
    assert got.warnings == [f"{p}:3: {col}={value!r} {why}; {outcome}"], got.warnings
    if outcome == "row skipped":
        assert sorted(got.rows["context"]) == [1024, 4096]
    else:
        assert len(got.rows) == 3 and got.rows.set_index("context")[col].isna()[2048]


def _times(r, t):
    """Every time and rate of a row set to t (a broken timer)."""
    cols = [c for c in synth.COLUMNS if c.startswith(("step_us", "kernel_us")) or c in
            ("achieved_gbs", "achieved_gflops", "tokens_per_s", "roofline_fraction")]
    return dict(r, **{c: t for c in cols})


def test_zero_times_are_refused_not_a_matplotlib_traceback(tmp_path):
    rows = synth.sweep()[::6]
    zero = synth.write_csv(tmp_path / "zero.csv", [_times(r, 0) for r in rows])
    r = run(zero, "--out", str(tmp_path / "r"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    err = r.stderr.splitlines()
    assert err[-1] == f"analysis: error: no usable rows in {zero}", r.stderr
    assert f"analysis: warning: {zero}:2: step_us_median='0' is not above 0; row skipped" in err, r.stderr
    # Beside usable rows the zero ones are warnings, and the report is written.
    good = synth.write_csv(tmp_path / "good.csv", rows)
    r = run(good, zero, "--out", str(tmp_path / "r"))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert all(l.startswith("analysis: warning:") for l in r.stderr.splitlines()), r.stderr
    assert (tmp_path / "r" / "report.md").exists()


def unescaped_pipes(line: str) -> int:
    """Cell boundaries in a Markdown table line: `|` not escaped by a backslash."""
    n, i = 0, 0
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        n += line[i] == "|"
        i += 1
    return n


def test_text_from_the_csv_is_escaped_in_the_markdown(tmp_path):
    hostile = dict(synth.row("mla", context=2048), variant="mla|evil", host="<script>alert(1)</script>",
                   mpi_library="MPI \\| [x](javascript:y) `z` & co", kernel_isa="<b>isa</b>|x")
    p = synth.write_csv(tmp_path / "a`<i>b.csv", synth.sweep()[::6] + [hostile])
    out = tmp_path / "r"
    r = run(p, "--out", str(out))
    assert r.returncode == 0, r.stderr
    text = (out / "report.md").read_text()
    for raw in ("<script", "<b>", "<i>", "[x](javascript", "`z`"):
        assert raw not in text, raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "a\\`&lt;i&gt;b.csv" in text
    assert "MPI \\\\\\| \\[x\\](javascript:y) \\`z\\` &amp; co" in text
    assert "mla\\|evil" in text
    # Every table keeps its shape: each line of a table has as many cells as its header.
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert len(tables) >= 10
    for t in tables:
        assert len({unescaped_pipes(l) for l in t}) == 1, "\n".join(t)


def _lines(path) -> list[bytes]:
    with open(path, "rb") as f:
        return f.read().split(b"\n")


@pytest.mark.parametrize("case, warning", [
    ("bom", None),
    ("crlf", None),
    ("nul", ":3: contains a NUL byte; line skipped"),
    ("latin1", ":3: not UTF-8 text; line skipped"),
    ("torn", ":6: 3 fields, header has"),
])
def test_hostile_bytes_cost_only_their_line(tmp_path, case, warning):
    rows = synth.sweep()[::18]   # 5 rows: lines 2..6
    lines = _lines(synth.write_csv(tmp_path / "g.csv", rows))
    if case == "bom":
        lines[0] = b"\xef\xbb\xbf" + lines[0]
    elif case == "crlf":
        lines = [ln + b"\r" if ln else ln for ln in lines]
    elif case == "nul":
        lines[2] = lines[2][:10] + b"\x00" + lines[2][10:]
    elif case == "latin1":
        lines[2] = lines[2].replace(b"node1", b"n\xe9ud")
    elif case == "torn":
        lines = lines[:5] + [b",".join(lines[5].split(b",")[:3])]   # the last row cut short, no newline
    p = tmp_path / f"{case}.csv"
    p.write_bytes(b"\n".join(lines))
    got = merge.load_sweeps([str(p)])
    if warning is None:
        assert got.warnings == [] and len(got.rows) == 5, got.warnings
    else:
        assert len(got.warnings) == 1 and got.warnings[0].startswith(f"{p}{warning}"), got.warnings
        assert len(got.rows) == 4


@pytest.mark.parametrize("case, warning", [
    ("header_only", ": header only, no rows"),
    ("duplicate_column", ": header names column(s) 'variant' twice, skipped"),
    ("blank_lines", ": empty, skipped"),
    ("unbalanced_header", ":1: header is not a CSV line (unexpected end of data), file skipped"),
])
def test_unusable_files_are_one_warning_then_one_error_line(tmp_path, case, warning):
    header = ",".join(synth.COLUMNS)
    body = synth.write_csv(tmp_path / "g.csv", [synth.row("mla")])
    text = {"header_only": header + "\n",
            "duplicate_column": open(body).read().replace(",host,", ",variant,", 1),
            "blank_lines": "\n\n  \n# a comment\n",
            "unbalanced_header": '"schema_version,' + header + "\n" + open(body).read().splitlines()[1] + "\n",
            }[case]
    p = tmp_path / f"{case}.csv"
    p.write_text(text)
    r = run(str(p), "--out", str(tmp_path / "r"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines() == [f"analysis: warning: {p}{warning}", f"analysis: error: no usable rows in {p}"]
    assert not (tmp_path / "r").exists()


# One of each kind the reader tells apart ("nan", "-inf", "1e400" take the paths of "x" and "inf").
HOSTILE = ["", "x", "inf", "0", "-1", "1.5", "99999999999999999999", "<b>|$\\frac$ & [a](b)"]


@pytest.mark.parametrize("value", HOSTILE)
def test_any_column_may_hold_any_hostile_value(tmp_path, value):
    """Row i has `value` in column i (every column once, most twice): the report is built
    with one-line warnings only, no exception. Run in-process so an exception fails here."""
    from analysis import report
    rows = [dict(r, **{synth.COLUMNS[i % len(synth.COLUMNS)]: value}) for i, r in enumerate(synth.sweep())]
    rows = [dict(r, schema_version=2) for r in rows]
    p = synth.write_csv(tmp_path / "h.csv", rows)
    loaded = merge.load_sweeps([p])
    assert len(loaded.rows) > 0 and all("\n" not in w for w in loaded.warnings)
    report.build(loaded, str(tmp_path / "r"))


def test_an_endless_line_ends_the_file_not_the_memory(tmp_path):
    rows = [synth.row("mla", context=L) for L in (1024, 2048, 4096)]
    lines = lines_of(synth.write_csv(tmp_path / "g.csv", rows))
    p = tmp_path / "long.csv"
    p.write_text("".join(lines[:3]) + "1," * (1 << 20) + "\n" + lines[3])
    got = merge.load_sweeps([str(p)])
    assert got.warnings == [f"{p}:4: line longer than {1 << 20} bytes; rest of the file skipped"]
    assert sorted(got.rows["context"]) == [1024, 2048]
    r = run("/dev/zero", "--out", str(tmp_path / "r"))   # no newline ever: read 1 MiB, then stop
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"analysis: warning: /dev/zero:1: line longer than {1 << 20} bytes; rest of the file skipped",
        "analysis: error: no usable rows in /dev/zero"], r.stderr


def test_samples_refuse_impossible_times_and_keep_the_rest(tmp_path):
    rows = synth.sweep()[::6]
    good = synth.write_csv(tmp_path / "good.csv", rows)
    r = rows[0]
    step_us = ["100", "0", "101", "-5", "inf", "1e300", "102", "103"]
    lines = [",".join(merge.SAMPLES_COLUMNS)] + [
        ",".join(str(x) for x in [r["run_id"], r["variant"], r["scope"], r["tp"], 0, r["context"], r["batch"],
                                  r["n_head"], r["kv_lora_rank"], r["kv_dtype"], 1, "concurrent", i, t, 100.0, ""])
        for i, t in enumerate(step_us)]
    lines.insert(4, '"x')   # line 5, after the samples 100, 0, 101
    s = tmp_path / "samples.csv"
    s.write_text("\n".join(lines) + "\n")
    got = merge.load_samples([str(s)])
    assert got.warnings == [f"{s}:5: not a CSV line (unexpected end of data); line skipped",
                            f"{s}:3: step_us='0' is not above 0; row skipped",
                            f"{s}:6: step_us='-5' is not above 0; row skipped",
                            f"{s}:7: step_us='inf' is not finite; row skipped",
                            f"{s}:8: step_us='1e300' is beyond 9007199254740992; row skipped"], got.warnings
    assert got.rows["step_us"].tolist() == [100, 101, 102, 103]
    cli = run(good, "--samples", str(s), "--out", str(tmp_path / "r"))
    assert cli.returncode == 0, cli.stderr
    assert all(l.startswith("analysis: warning:") for l in cli.stderr.splitlines()), cli.stderr
    assert (tmp_path / "r" / "latency_distributions.png").exists()


def test_a_refused_all_reduce_size_leaves_the_fit_to_the_complete_rows(tmp_path):
    rows = synth.sweep()
    i = next(i for i, r in enumerate(rows) if r["scope"] == "layer" and r["tp"] == 2)
    rows[i] = dict(rows[i], allreduce_bytes_per_step="x")
    p = synth.write_csv(tmp_path / "ar.csv", rows)
    r = run(p, "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    # Before: NaN reached LAPACK, which printed "** On entry to DLASCL ..." (or the fit raised).
    assert r.stderr.splitlines() == [f"analysis: warning: {p}:{i + 2}: allreduce_bytes_per_step='x' is not a number; "
                                     "cell left empty"], r.stderr
    n_fit = sum(1 for r_ in rows if r_["scope"] == "layer" and r_["tp"] > 1) - 1
    assert f"all-reduce α, β fitted to {n_fit} measured rows" in (tmp_path / "r" / "report.md").read_text()


def test_many_bad_lines_are_counted_after_twenty(tmp_path):
    lines = lines_of(synth.write_csv(tmp_path / "g.csv", [synth.row("mla", context=L) for L in (1024, 2048)]))
    p = tmp_path / "noisy.csv"
    p.write_text(lines[0] + lines[1] + "1,2\n" * 25 + lines[2])
    got = merge.load_sweeps([str(p)])
    assert len(got.rows) == 2
    assert [w.split(": ", 1)[0] for w in got.warnings[:20]] == [f"{p}:{n}" for n in range(3, 23)]
    assert got.warnings[20:] == [f"{p}: 5 more bad line(s) skipped, not listed"]


@pytest.mark.parametrize("over", [
    dict(calib_read_gbs="", calib_triad_gbs="", calib_sgemm_gflops="", calib_fma_gflops=""),   # no calibration
    dict(date_utc="yesterday"),                                                               # no date
])
def test_stderr_is_one_line_warnings_only(tmp_path, over):
    """numpy and pandas warnings (empty medians, unparsable dates) are about cells already
    named in a warning; they must not add multi-line Python warnings to stderr."""
    p = synth.write_csv(tmp_path / "c.csv", [dict(r, **over) for r in synth.sweep()[::6]])
    r = run(p, "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    assert all(l.startswith("analysis: warning: ") for l in r.stderr.splitlines()), r.stderr


def test_a_newline_in_a_file_name_does_not_split_a_warning(tmp_path):
    good = synth.write_csv(tmp_path / "good.csv", synth.sweep()[::6])
    odd = tmp_path / "a\nb.csv"
    odd.write_text("a,b\n1,2\n")
    r = run(good, str(odd), "--out", str(tmp_path / "r"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [f"analysis: warning: {tmp_path}/a b.csv: not a sweep CSV "
                                     "(no schema_version column in the first line), skipped"], r.stderr
    assert "a b.csv: not a sweep CSV" in (tmp_path / "r" / "report.md").read_text()


def test_every_numeric_column_has_exactly_one_range():
    """A column added to the loaders must say what values it can hold, or it would be
    taken unchecked (inf, negative) as before."""
    from analysis import reader
    sets = [reader.AT_LEAST_ONE, reader.COUNT, reader.POSITIVE, reader.NON_NEGATIVE]
    samples_numeric = [c for c in merge.SAMPLES_COLUMNS if c not in ("run_id", "variant", "scope", "kv_dtype",
                                                                     "timing_mode")]
    for col in merge.NUMERIC_COLUMNS + merge.OPTIONAL_NUMERIC_COLUMNS + samples_numeric:
        assert sum(col in s for s in sets) == 1, col
