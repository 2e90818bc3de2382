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
