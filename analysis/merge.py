"""Read sweep CSVs and raw samples files, validate them against schema 3 (or 2, 1)
and merge them. Nothing here fails on bad input: every unusable file or row becomes
a warning (printed to stderr by the CLI and listed in the report). Only a path
that does not exist is fatal (`InputError`)."""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass, field

import pandas as pd

SCHEMA_VERSION = 3
# Versions this reader takes: schema 1 lacks the columns of SINCE_SCHEMA_2 and
# SINCE_SCHEMA_3, schema 2 those of SINCE_SCHEMA_3; they stay empty for its rows.
KNOWN_SCHEMA_VERSIONS = ("1", "2", "3")
SINCE_SCHEMA_2 = ["calib_fma_width", "kernel_isa"]
SINCE_SCHEMA_3 = ["config_id", "array_task", "array_count", "calib_source", "seed"]

TEXT_COLUMNS = [
    "run_id", "harness_version", "git_rev", "host", "mpi_library", "date_utc",
    "calib_fma_width", "variant", "scope", "kv_dtype", "kernel_isa", "timing_mode", "cold_cache", "validation",
    "config_id", "calib_source", "seed",   # seed is text: a 64-bit seed does not survive a float
]
NUMERIC_COLUMNS = [
    "world_size", "array_task", "array_count", "calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops",
    "tp", "dp", "tp_group", "context", "batch", "n_layer", "n_embd", "n_head", "head_dim",
    "rope_dim", "kv_lora_rank", "block_width", "kv_heads", "threads",
    "kv_elems_per_token", "kv_bytes_per_token", "kv_bytes_per_rank", "kernel_bytes_per_step",
    "kernel_flops_per_step", "weight_bytes_per_rank", "allreduce_bytes_per_step",
    "allreduce_count_per_step", "validation_max_err", "warmup_steps", "timed_steps",
    "timer_resolution_us", "step_us_median", "step_us_p10", "step_us_p90", "step_us_min",
    "step_us_max", "kernel_us_median", "kernel_us_p10", "kernel_us_p90", "allreduce_us_median",
    "tokens_per_s", "achieved_gbs", "achieved_gflops", "roofline_us", "roofline_fraction",
]
# A row without any of these cannot go into any table; the rest may be empty.
REQUIRED_COLUMNS = [
    "schema_version", "date_utc", "variant", "scope", "tp", "dp", "tp_group", "context",
    "batch", "n_layer", "n_head", "kv_dtype", "step_us_median",
]
RESUME_KEY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "resume-key.txt")


def read_resume_key(path: str = RESUME_KEY_FILE) -> list[str]:
    """The harness's resume key (docs/resume-key.txt, held to the Swift definition by a test)."""
    with open(path, encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


# What identifies a measured configuration: the harness's resume key, per TP group
# (one row each), and per host (the same configuration on two machines is two
# measurements). Two rows that agree on all of these are reruns of one measurement,
# and only the latest (date_utc) is kept.
CONFIG_KEY = read_resume_key() + ["tp_group", "host"]
SAMPLES_COLUMNS = [
    "run_id", "variant", "scope", "tp", "tp_group", "context", "batch", "n_head",
    "kv_lora_rank", "kv_dtype", "threads", "timing_mode", "step_index", "step_us",
    "kernel_us", "allreduce_us",
]
DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}


class InputError(Exception):
    """A path that does not exist, or nothing usable at all."""


@dataclass
class Loaded:
    rows: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def expand_paths(patterns: list[str]) -> list[str]:
    """Expand globs the shell did not (quoted, or on shells without globbing)."""
    paths = []
    for p in patterns:
        if any(ch in p for ch in "*?["):
            hits = sorted(glob.glob(p))
            if not hits:
                raise InputError(f"no file matches {p}")
            paths += hits
        elif not os.path.exists(p):
            raise InputError(f"{p}: no such file")
        else:
            paths.append(p)
    return paths


def _read_raw(path: str, warnings: list[str]) -> pd.DataFrame | None:
    """One file as strings, with `_file` and `_line` columns, or None (warned)."""
    if os.path.isdir(path):
        warnings.append(f"{path}: is a directory, skipped")
        return None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines()]
    except (UnicodeDecodeError, OSError) as e:
        warnings.append(f"{path}: not a readable text CSV ({type(e).__name__}), skipped")
        return None
    numbered = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
    if not numbered:
        warnings.append(f"{path}: empty, skipped")
        return None
    records = list(csv.reader([ln for _, ln in numbered]))
    header = [h.strip() for h in records[0]]
    if "schema_version" not in header and "step_us" not in header:
        warnings.append(f"{path}: not a sweep CSV (no schema_version column in the first line), skipped")
        return None
    out = []
    for (lineno, _), rec in zip(numbered[1:], records[1:]):
        if len(rec) != len(header):
            warnings.append(f"{path}:{lineno}: {len(rec)} fields, header has {len(header)}; row skipped")
            continue
        out.append(dict(zip(header, rec), _file=path, _line=lineno))
    if not out:
        warnings.append(f"{path}: header only, no rows")
        return None
    return pd.DataFrame(out, columns=header + ["_file", "_line"])


def _coerce(df: pd.DataFrame, numeric: list[str], required: list[str], warnings: list[str]) -> pd.DataFrame:
    """Numeric columns to floats; drop rows whose required cells are empty or malformed."""
    bad = pd.Series(False, index=df.index)
    for col in numeric:
        if col not in df.columns:
            continue
        text = df[col].astype(str).str.strip()
        num = pd.to_numeric(text.where(text != ""), errors="coerce")
        malformed = num.isna() & (text != "")
        for i in df.index[malformed]:
            where = f"{df.at[i, '_file']}:{df.at[i, '_line']}"
            if col in required:
                warnings.append(f"{where}: {col}={text[i]!r} is not a number; row skipped")
            else:
                warnings.append(f"{where}: {col}={text[i]!r} is not a number; cell left empty")
        if col in required:
            bad |= num.isna()
        df[col] = num
    for col in required:
        if col in df.columns and col not in numeric:
            empty = df[col].astype(str).str.strip() == ""
            for i in df.index[empty & ~bad]:
                warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: {col} is empty; row skipped")
            bad |= empty
    return df[~bad]


def load_sweeps(patterns: list[str]) -> Loaded:
    paths = expand_paths(patterns)
    warnings: list[str] = []
    notes: list[str] = []
    frames = []
    for path in paths:
        df = _read_raw(path, warnings)
        if df is None:
            continue
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            warnings.append(f"{path}: missing required column(s) {', '.join(missing)}; its {len(df)} row(s) skipped")
            continue
        version = df["schema_version"].astype(str).str.strip()
        absent = [c for c in TEXT_COLUMNS + NUMERIC_COLUMNS if c not in df.columns]
        if (version == "1").all():   # schema 1 never had these
            absent = [c for c in absent if c not in SINCE_SCHEMA_2]
        if version.isin(["1", "2"]).all():   # nor schema 2 these
            absent = [c for c in absent if c not in SINCE_SCHEMA_3]
        if absent:
            warnings.append(f"{path}: missing column(s) {', '.join(absent)}; treated as empty")
        wrong = ~version.isin(KNOWN_SCHEMA_VERSIONS)
        for ver, n in df.loc[wrong, "schema_version"].value_counts().items():
            warnings.append(f"{path}: {n} row(s) with schema_version={ver!r} "
                            f"(this reader knows {', '.join(KNOWN_SCHEMA_VERSIONS)}); skipped")
        frames.append(df[~wrong])
    if not frames or all(f.empty for f in frames):
        raise InputError("no usable rows in " + ", ".join(paths))
    df = pd.concat(frames, ignore_index=True)
    for col in TEXT_COLUMNS + NUMERIC_COLUMNS:
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].fillna("")   # a column only some files have (a newer schema) is empty in the others
    for col in CONFIG_KEY:   # key columns the reader does not otherwise use (q_lora_rank, ...): compared as text
        df[col] = df[col].fillna("").astype(str).str.strip() if col in df.columns else ""
    df = _coerce(df, NUMERIC_COLUMNS, REQUIRED_COLUMNS, warnings)
    df["variant"] = df["variant"].str.strip().str.lower()
    df["scope"] = df["scope"].str.strip().str.lower()
    df["kv_dtype"] = df["kv_dtype"].str.strip().str.lower()
    unknown_dtype = ~df["kv_dtype"].isin(DTYPE_BYTES)
    for i in df.index[unknown_dtype]:
        warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: kv_dtype={df.at[i, 'kv_dtype']!r} unknown; row skipped")
    df = df[~unknown_dtype]
    failed = df["validation"].astype(str).str.strip().isin(["fail", "false", "FAIL"])
    for i in df.index[failed]:
        warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: validation={df.at[i, 'validation']!r}; row skipped")
    df = df[~failed]
    if df.empty:
        raise InputError("no usable rows in " + ", ".join(paths))

    # Exact duplicates (the same file given twice, a Slurm array writing one row twice).
    data_cols = [c for c in df.columns if not c.startswith("_")]
    dup = df.duplicated(subset=data_cols, keep="first")
    if dup.any():
        notes.append(f"dropped {int(dup.sum())} exact duplicate row(s)")
    df = df[~dup]
    # Reruns: the same configuration measured again; keep the latest by date_utc.
    df = df.assign(_date=pd.to_datetime(df["date_utc"], errors="coerce", utc=True))
    for i in df.index[df["_date"].isna()]:
        warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: date_utc={df.at[i, 'date_utc']!r} is not ISO-8601; "
                        "treated as oldest when de-duplicating reruns")
    key = [c for c in CONFIG_KEY]
    df = df.sort_values("_date", kind="stable", na_position="first")
    rerun = df.duplicated(subset=key, keep="last")
    if rerun.any():
        notes.append(f"dropped {int(rerun.sum())} older rerun(s) of a configuration already measured "
                     "(same host and resume-key columns); kept the latest by date_utc")
    df = df[~rerun].drop(columns="_date").sort_values(["scope", "variant", "tp", "context", "batch"], kind="stable")
    df = df.reset_index(drop=True)
    df["dtype_bytes"] = df["kv_dtype"].map(DTYPE_BYTES)
    df["seqs_per_group"] = df["batch"] / df["dp"].where(df["dp"] > 0, 1)
    return Loaded(rows=df, warnings=warnings, notes=notes, files=paths)


def load_samples(patterns: list[str]) -> Loaded:
    """Raw samples files (one row per timed step). Bad files and rows are warned about."""
    paths = expand_paths(patterns)
    warnings: list[str] = []
    frames = []
    for path in paths:
        df = _read_raw(path, warnings)
        if df is None:
            continue
        missing = [c for c in SAMPLES_COLUMNS if c not in df.columns]
        if missing:
            warnings.append(f"{path}: samples file lacks column(s) {', '.join(missing)}; skipped")
            continue
        frames.append(df)
    if not frames:
        return Loaded(rows=pd.DataFrame(columns=SAMPLES_COLUMNS), warnings=warnings, files=paths)
    df = pd.concat(frames, ignore_index=True)
    numeric = ["tp", "tp_group", "context", "batch", "n_head", "kv_lora_rank", "threads",
               "step_index", "step_us", "kernel_us", "allreduce_us"]
    df = _coerce(df, numeric, ["tp", "context", "step_us"], warnings)
    df["variant"] = df["variant"].str.strip().str.lower()
    data_cols = [c for c in df.columns if not c.startswith("_")]
    df = df[~df.duplicated(subset=data_cols)].reset_index(drop=True)
    return Loaded(rows=df, warnings=warnings, files=paths)
