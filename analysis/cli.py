"""`python -m analysis report CSV... --out DIR [--samples FILE...]`"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

from . import merge, noise, report, stats, tables


def say(kind: str, text: str) -> None:
    """One line on stderr, `analysis: warning: …` or `analysis: error: …`. A newline in
    the text (a file name may hold one) must not start a line of its own."""
    print(f"analysis: {kind}: " + " ".join(str(text).splitlines()), file=sys.stderr)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning in the CLI's format: one line, never a source excerpt."""
    say("warning", f"{category.__name__}: {message} ({os.path.basename(filename)}:{lineno})")


def _at_least(low: int):
    def parse(text: str) -> int:
        n = int(text)
        if n < low:
            raise argparse.ArgumentTypeError(f"{n} is below {low}")
        return n
    return parse


def _fraction(text: str) -> float:
    x = float(text)
    if not 0 < x < 10:   # a relative half-width: 0.1 is ±10%
        raise argparse.ArgumentTypeError(f"{text} is not a fraction above 0 (0.1 means ±10%)")
    return x


def report_main() -> None:
    """`mlra-report …` (the installed command, pyproject.toml): `python -m analysis report …`."""
    sys.exit(main(["report", *sys.argv[1:]]))


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        # numpy's RuntimeWarnings (median of an all-empty column, 0/0) come from cells the
        # reader has already refused with a warning naming them; the tables show "–".
        warnings.simplefilter("ignore", RuntimeWarning)
        # pandas says this when a date_utc cell is not ISO-8601; merge names that cell.
        warnings.filterwarnings("ignore", message="Could not infer format", category=UserWarning)
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description="Sweep CSVs → Markdown report with figures.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="write report.md and PNG figures")
    r.add_argument("csv", nargs="+", help="sweep CSV files or globs (docs/csv-schema.md)")
    r.add_argument("--out", default="report", help="output directory (default: report)")
    r.add_argument("--samples", nargs="+", default=None,
                   help="raw samples files or globs (optional): intervals from the per-step times")
    r.add_argument("--baseline", default="mlra4", choices=tables.ORDER,
                   help="the variant every speedup divides by (default: mlra4)")
    r.add_argument("--seed", type=int, default=stats.DEFAULT_SEED,
                   help=f"seed of the bootstrap; the same input and seed give the same report "
                        f"(default: {stats.DEFAULT_SEED})")
    r.add_argument("--resamples", type=_at_least(100), default=stats.RESAMPLES,
                   help=f"bootstrap resamples per median (default: {stats.RESAMPLES})")
    r.add_argument("--noise", nargs="+", default=None, metavar="JSON",
                   help="noise probe reports or globs (mlra noise --out; the sweep's <out>.noise-<run_id>.json): "
                        "section 12 shows their spectra and says whether the nodes were quiet enough")
    r.add_argument("--noise-threshold", type=_fraction, default=stats.DEFAULT_NOISE_THRESHOLD, metavar="FRACTION",
                   help="flag a median or ratio whose 95%% interval's half-width exceeds this fraction of it "
                        f"(default: {stats.DEFAULT_NOISE_THRESHOLD:g}, i.e. ±{100 * stats.DEFAULT_NOISE_THRESHOLD:g}%%)")
    a = p.parse_args(argv)
    try:
        loaded = merge.load_sweeps(a.csv)
        samples = merge.load_samples(a.samples) if a.samples else None
        probes = noise.load_reports(a.noise, loaded.warnings) if a.noise else []
    except merge.InputError as e:
        for w in e.warnings:   # why nothing was usable, then the one error line
            say("warning", w)
        say("error", str(e))
        return 1
    for w in loaded.warnings + (samples.warnings if samples else []):
        say("warning", w)
    try:
        path = report.build(loaded, a.out, samples, baseline=a.baseline, seed=a.seed, resamples=a.resamples,
                            threshold=a.noise_threshold, noise_reports=probes)
    except OSError as e:
        say("error", f"{a.out}: cannot write the report ({e.strerror or e})")
        return 1
    print(f"analysis: wrote {path} ({len(loaded.rows)} rows from {len(loaded.files)} file(s))")
    return 0
