"""`python -m analysis report CSV... --out DIR [--samples FILE...]`"""

from __future__ import annotations

import argparse
import sys

from . import merge, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description="Sweep CSVs → Markdown report with figures.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="write report.md and PNG figures")
    r.add_argument("csv", nargs="+", help="sweep CSV files or globs (docs/csv-schema.md)")
    r.add_argument("--out", default="report", help="output directory (default: report)")
    r.add_argument("--samples", nargs="+", default=None, help="raw samples files or globs (optional)")
    a = p.parse_args(argv)
    try:
        loaded = merge.load_sweeps(a.csv)
        samples = merge.load_samples(a.samples) if a.samples else None
    except merge.InputError as e:
        print(f"analysis: error: {e}", file=sys.stderr)
        return 1
    for w in loaded.warnings + (samples.warnings if samples else []):
        print(f"analysis: warning: {w}", file=sys.stderr)
    try:
        path = report.build(loaded, a.out, samples)
    except OSError as e:
        print(f"analysis: error: {a.out}: cannot write the report ({e.strerror or e})", file=sys.stderr)
        return 1
    print(f"analysis: wrote {path} ({len(loaded.rows)} rows from {len(loaded.files)} file(s))")
    return 0
