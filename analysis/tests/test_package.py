"""The analysis as a package: `pip install <checkout>` gives `mlra-report`, which runs from
any folder (the paper's data and the resume key travel inside the package)."""

from __future__ import annotations

import os
import subprocess
import sys

import synth

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_mlra_report_installs_and_runs_from_another_folder(tmp_path):
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), ROOT],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    installed = target / "analysis" / "data" / "resume-key.txt"
    assert installed.is_file() and not installed.is_symlink(), "the wheel holds the key's contents"
    with open(os.path.join(ROOT, "docs", "resume-key.txt"), encoding="utf-8") as f:
        assert installed.read_text(encoding="utf-8") == f.read()
    assert not (target / "analysis" / "tests").exists(), "the tests stay in the checkout"
    csv = synth.write_csv(tmp_path / "r.csv", synth.sweep())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = subprocess.run([str(target / "bin" / "mlra-report"), csv, "--out", "rep"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "rep" / "report.md").is_file()
    bad = subprocess.run([str(target / "bin" / "mlra-report"), "nope.csv"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and bad.stderr.strip().endswith("nope.csv: no such file"), bad.stderr
