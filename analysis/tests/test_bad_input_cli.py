"""Issue 7, bad input to the analysis CLI, run as a user runs it (`python -m analysis`
in a subprocess, so a traceback cannot hide): one clear line and a non-zero exit
when nothing is usable, warnings (exit 0) when the rest is usable, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import synth

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", "report", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def assert_clean_error(r: subprocess.CompletedProcess, fragment: str) -> None:
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    errors = [l for l in r.stderr.splitlines() if l.startswith("analysis: error:")]
    assert len(errors) == 1, r.stderr
    assert fragment in errors[0], r.stderr


@pytest.fixture
def files(tmp_path):
    good = tmp_path / "good.csv"
    synth.write_csv(good, synth.sweep())
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    return dict(good=str(good), empty=str(empty), binary=str(binary), other=str(other), dir=tmp_path)


@pytest.mark.parametrize("name, fragment", [
    ("missing", "no such file"),
    ("empty", "no usable rows"),
    ("binary", "no usable rows"),
    ("other", "no usable rows"),
])
def test_nothing_usable_is_one_error_line(files, name, fragment):
    path = files.get(name, str(files["dir"] / "missing.csv"))
    out = files["dir"] / "r"
    r = run(path, "--out", str(out))
    assert_clean_error(r, fragment)
    assert path in r.stderr
    assert not out.exists(), "nothing may be written when nothing is usable"


@pytest.mark.parametrize("name, warning", [
    ("empty", "empty, skipped"),
    ("binary", "not a readable text CSV"),
    ("other", "not a sweep CSV"),
])
def test_bad_file_beside_a_good_one_is_a_warning(files, name, warning):
    out = files["dir"] / "r"
    r = run(files["good"], files[name], "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert any(l.startswith("analysis: warning:") and files[name] in l and warning in l for l in lines), r.stderr
    assert all(l.startswith("analysis: warning:") for l in lines), r.stderr
    assert (out / "report.md").exists()


def test_bad_samples_file_is_a_warning(files):
    out = files["dir"] / "r"
    r = run(files["good"], "--samples", files["binary"], "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "analysis: warning:" in r.stderr, r.stderr


@pytest.mark.parametrize("target", ["/proc/nope/report", "/sys/report", "{good}/report"])
def test_unwritable_output_folder_is_one_error_line(files, target):
    out = target.format(good=files["good"])
    r = run(files["good"], "--out", out)
    assert_clean_error(r, out)
