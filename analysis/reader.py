"""The one way this package reads its input files: path expansion, a line-by-line
CSV reader and the conversion of numeric cells. `merge.load_sweeps` and
`merge.load_samples` both go through here, so every entry point refuses the same
bad input in the same words.

Nothing here raises on bad content: an unusable file, line or value becomes one
warning line naming the file (and line, and column). Only a path that does not
exist raises `InputError`."""

from __future__ import annotations

import codecs
import csv
import glob
import math
import os

import numpy as np
import pandas as pd


class InputError(Exception):
    """A path that does not exist, or nothing usable at all. `warnings` are those
    collected before, which say why nothing was usable."""

    def __init__(self, message: str, warnings: list[str] | None = None):
        super().__init__(message)
        self.warnings = list(warnings or [])


# After this many bad lines in one file the rest are counted, not listed: a file that
# is not a CSV at all must not bury the report and the terminal under warnings.
MAX_LINE_WARNINGS = 20
# A sweep row is under 2 KiB (64 fields); a "line" beyond this is no CSV row.
MAX_LINE_BYTES = 1 << 20

# The largest magnitude a cell may hold. Above 2^53 a float64 no longer holds every
# integer, so a count or byte size is no longer exact, and no time, rate or size this
# harness measures comes near it (9e15 µs is 285 years); it also keeps the tables'
# products of several columns far from float overflow.
MAX_MAGNITUDE = 2.0 ** 53

# What each numeric column can physically be (docs/csv-schema.md; every numeric
# column the loaders convert must be in exactly one set, a test checks). A value outside
# its range is refused like a malformed one: a zero time gives infinite rates, a zero
# TP degree or bandwidth divides by zero, a fractional head count is no configuration.
#   integer >= 1: counts of ranks, tokens, sequences, layers, heads, threads, steps
AT_LEAST_ONE = {"world_size", "tp", "dp", "context", "batch", "n_layer", "n_embd", "n_head", "head_dim",
                "threads", "calib_threads", "timed_steps", "gpu_ranks_sharing",
                "group_nodes"}
#   integer >= 0: indices, widths that are 0 for one family, element and byte counts
COUNT = {"tp_group", "rope_dim", "kv_lora_rank", "q_lora_rank", "block_width", "kv_heads",
         "intermediate_size", "vocab_size",
         "kv_elems_per_token", "kv_bytes_per_token", "kv_bytes_per_rank", "kernel_bytes_per_step",
         "kernel_flops_per_step", "weight_bytes_per_rank", "allreduce_bytes_per_step",
         "allreduce_count_per_step", "warmup_steps", "step_index",
         "gpu_sm_clock_mhz", "gpu_mem_clock_mhz"}   # 0: no NVML on the GPU node
#   real > 0: measured times (a step faster than the timer is no measurement) and roofs
POSITIVE = {"calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops",
            "timer_resolution_us", "step_us_median", "step_us_p10", "step_us_p90", "step_us_min",
            "step_us_max", "kernel_us_median", "kernel_us_p10", "kernel_us_p90", "step_us", "kernel_us",
            "gpu_calib_read_gbs", "gpu_calib_copy_gbs", "gpu_calib_tensor_tflops", "gpu_calib_fma_tflops"}
#   real >= 0: an all-reduce is 0 at tp 1; errors, rates and fractions cannot be negative
NON_NEGATIVE = {"allreduce_us_median", "allreduce_us_p10", "allreduce_us_p90", "imbalance_us_median", "allreduce_us", "validation_max_err", "validation_atol", "validation_rtol",
                "group_tokens_per_s", "job_tokens_per_s",
                "achieved_gbs", "achieved_gflops", "roofline_us", "roofline_fraction",
                "noise_cv_max", "noise_lost_fraction_max", "noise_top_hz"}


def expand_paths(patterns: list[str]) -> list[str]:
    """Paths as given, with globs the shell did not expand (quoted, or shells without
    globbing). An existing path is always taken literally: `job[1].csv` is a file name
    that a glob would not match."""
    paths = []
    for p in patterns:
        if os.path.exists(p):
            paths.append(p)
        elif any(ch in p for ch in "*?["):
            hits = sorted(glob.glob(p))
            if not hits:
                raise InputError(f"no file matches {p}")
            paths += hits
        else:
            raise InputError(f"{p}: no such file")
    return paths


def read_table(path: str, warnings: list[str]) -> pd.DataFrame | None:
    """One CSV file as strings, with `_file` and `_line` columns, or None (warned).

    One physical line is one record, as the harness writes and resumes its files
    (fields never hold a newline), so a bad line (an unbalanced quote, undecodable
    bytes, a NUL, the wrong number of fields) is skipped alone with a warning and
    cannot swallow the lines after it. Blank lines and `#` comments are skipped; a
    UTF-8 byte-order mark and CRLF line ends are accepted."""
    if os.path.isdir(path):
        warnings.append(f"{path}: is a directory, skipped")
        return None
    try:
        f = open(path, "rb")
    except OSError as e:
        warnings.append(f"{path}: cannot be read ({e.strerror or type(e).__name__}), skipped")
        return None
    header: list[str] | None = None
    records: list[list[str]] = []
    linenos: list[int] = []
    bad_lines = 0

    def bad(lineno: int, why: str) -> None:
        nonlocal bad_lines
        bad_lines += 1
        if bad_lines <= MAX_LINE_WARNINGS:
            warnings.append(f"{path}:{lineno}: {why}; line skipped")

    with f:
        try:
            lineno = 0
            while raw := f.readline(MAX_LINE_BYTES + 1):
                lineno += 1
                if len(raw) > MAX_LINE_BYTES:
                    # Not a row of any sweep (/dev/zero, a binary blob): reading on could
                    # take unbounded memory for one line, so the file ends here.
                    warnings.append(f"{path}:{lineno}: line longer than {MAX_LINE_BYTES} bytes; "
                                    f"rest of the file skipped")
                    if header is None:
                        return None
                    break
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                raw = raw.rstrip(b"\n")
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    text = None
                if text is None or "\x00" in text:
                    if header is None:   # the first line already is not text: not a CSV at all
                        warnings.append(f"{path}: not a readable text CSV (line {lineno} is not UTF-8 text), skipped")
                        return None
                    bad(lineno, "not UTF-8 text" if text is None else "contains a NUL byte")
                    continue
                if not text.strip() or text.startswith("#"):
                    continue
                try:
                    rec = next(csv.reader([text], strict=True))
                except csv.Error as e:
                    if header is None:
                        warnings.append(f"{path}:{lineno}: header is not a CSV line ({e}), file skipped")
                        return None
                    bad(lineno, f"not a CSV line ({e})")
                    continue
                if header is None:
                    header = [h.strip() for h in rec]
                    if "schema_version" not in header and "step_us" not in header:
                        warnings.append(f"{path}: not a sweep CSV (no schema_version column in the first line), skipped")
                        return None
                    dups = sorted({h for h in header if header.count(h) > 1})
                    if dups:
                        # Which of two same-named columns holds the value is unknowable.
                        warnings.append(f"{path}: header names column(s) {', '.join(map(repr, dups))} twice, skipped")
                        return None
                    continue
                if len(rec) != len(header):
                    bad(lineno, f"{len(rec)} fields, header has {len(header)}")
                    continue
                records.append(rec)
                linenos.append(lineno)
        except OSError as e:
            warnings.append(f"{path}: read failed ({e.strerror or type(e).__name__}); "
                            f"using the {len(records)} row(s) read before")
    if bad_lines > MAX_LINE_WARNINGS:
        warnings.append(f"{path}: {bad_lines - MAX_LINE_WARNINGS} more bad line(s) skipped, not listed")
    if header is None:
        warnings.append(f"{path}: empty, skipped")
        return None
    if not records:
        warnings.append(f"{path}: header only, no rows")
        return None
    df = pd.DataFrame(records, columns=header, dtype=object)
    df["_file"] = path
    df["_line"] = linenos
    return df


def _impossible(col: str, num: pd.Series) -> pd.Series:
    """Per cell, why the number cannot be a value of column col ("" when it can; NaN
    cells, the empty or malformed ones, are "")."""
    why = pd.Series("", index=num.index, dtype=object)
    checks = [(np.isinf(num), "is not finite"), (num.abs() > MAX_MAGNITUDE, f"is beyond {MAX_MAGNITUDE:.0f}")]
    if col in AT_LEAST_ONE or col in COUNT:
        checks.append((num.notna() & (num % 1 != 0), "is not a whole number"))   # NaN % 1 is NaN, and NaN != 0
    if col in AT_LEAST_ONE:
        checks.append((num < 1, "is below 1"))
    if col in COUNT or col in NON_NEGATIVE:
        checks.append((num < 0, "is negative"))
    if col in POSITIVE:
        checks.append((num <= 0, "is not above 0"))
    for mask, text in reversed(checks):   # the first check that applies is the one named
        why[mask.fillna(False).astype(bool)] = text
    why[num.isna()] = ""   # NaN % 1 != 0 holds: an empty cell of an integer column is no whole-number violation
    return why


def to_numbers(df: pd.DataFrame, numeric: list[str], required: list[str], warnings: list[str]) -> pd.DataFrame:
    """Numeric columns to floats. A malformed or impossible cell (see the ranges above) is
    warned about with file, line and column: in a required column the row is skipped, in
    any other the cell is left empty. Rows whose required cells are empty are skipped."""
    bad = pd.Series(False, index=df.index)
    for col in numeric:
        if col not in df.columns:
            continue
        text = df[col].astype(str).str.strip()
        num = pd.to_numeric(text.where(text != ""), errors="coerce").astype(float)
        outcome = "row skipped" if col in required else "cell left empty"
        why = _impossible(col, num)
        why[num.isna() & (text != "")] = "is not a number"
        for i in df.index[why != ""]:
            warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: {col}={text[i]!r} {why[i]}; {outcome}")
        num[why != ""] = math.nan
        if col in required:
            for i in df.index[(text == "") & ~bad]:
                warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: {col} is empty; row skipped")
            bad |= num.isna()
        df[col] = num
    for col in required:
        if col in df.columns and col not in numeric:
            empty = df[col].astype(str).str.strip() == ""
            for i in df.index[empty & ~bad]:
                warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: {col} is empty; row skipped")
            bad |= empty
    return df[~bad]
