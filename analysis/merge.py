"""Read sweep CSVs and raw samples files, validate them against schema 3 (or 2, 1)
and merge them. Nothing here fails on bad input: every unusable file or row becomes
a warning (printed to stderr by the CLI and listed in the report). Only a path
that does not exist is fatal (`InputError`). Files, lines and cells are read by
`reader`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from .reader import InputError, expand_paths, read_table, to_numbers  # noqa: F401 (InputError: merge's API)

SCHEMA_VERSION = 3
# Versions this reader takes: schema 1 lacks the columns of SINCE_SCHEMA_2 and
# SINCE_SCHEMA_3, schema 2 those of SINCE_SCHEMA_3; they stay empty for its rows.
KNOWN_SCHEMA_VERSIONS = ("1", "2", "3")
SINCE_SCHEMA_2 = ["calib_fma_width", "kernel_isa"]
SINCE_SCHEMA_3 = ["config_id", "array_task", "array_count", "calib_source", "seed"]
# Where a TP group ran (issue 16): absent from files of schema 3 and before.
NODE_COLUMNS = ["group_nodes", "group_hosts"]

TEXT_COLUMNS = [
    "run_id", "harness_version", "git_rev", "host", "mpi_library", "date_utc",
    "calib_fma_width", "variant", "scope", "kv_dtype", "kernel_isa", "timing_mode", "cold_cache", "validation",
    "config_id", "calib_source", "seed",   # seed is text: a 64-bit seed does not survive a float
    "array_task", "array_count",           # which Slurm array task wrote a row: labels, not measurements
    "group_hosts",                         # the TP group's nodes' host names, ';'-separated
]
NUMERIC_COLUMNS = [
    "world_size", "calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops",
    "tp", "dp", "tp_group", "context", "batch", "n_layer", "n_embd", "n_head", "head_dim",
    "rope_dim", "kv_lora_rank", "block_width", "kv_heads", "threads",
    "kv_elems_per_token", "kv_bytes_per_token", "kv_bytes_per_rank", "kernel_bytes_per_step",
    "kernel_flops_per_step", "weight_bytes_per_rank", "allreduce_bytes_per_step",
    "allreduce_count_per_step", "validation_max_err", "warmup_steps", "timed_steps",
    "timer_resolution_us", "step_us_median", "step_us_p10", "step_us_p90", "step_us_min",
    "step_us_max", "kernel_us_median", "kernel_us_p10", "kernel_us_p90", "allreduce_us_median",
    "tokens_per_s", "achieved_gbs", "achieved_gflops", "roofline_us", "roofline_fraction",
    "group_nodes",
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


@dataclass
class Loaded:
    rows: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def load_sweeps(patterns: list[str]) -> Loaded:
    paths = expand_paths(patterns)
    warnings: list[str] = []
    notes: list[str] = []
    frames = []
    for path in paths:
        df = read_table(path, warnings)
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
        if version.isin(["1", "2", "3"]).all():
            absent = [c for c in absent if c not in NODE_COLUMNS]
        if absent:
            warnings.append(f"{path}: missing column(s) {', '.join(absent)}; treated as empty")
        wrong = ~version.isin(KNOWN_SCHEMA_VERSIONS)
        for ver, n in df.loc[wrong, "schema_version"].value_counts().items():
            warnings.append(f"{path}: {n} row(s) with schema_version={ver!r} "
                            f"(this reader knows {', '.join(KNOWN_SCHEMA_VERSIONS)}); skipped")
        frames.append(df[~wrong])
    if not frames or all(f.empty for f in frames):
        raise InputError("no usable rows in " + ", ".join(paths), warnings)
    df = pd.concat(frames, ignore_index=True)
    for col in TEXT_COLUMNS + NUMERIC_COLUMNS:
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].fillna("")   # a column only some files have (a newer schema) is empty in the others
    for col in CONFIG_KEY:   # key columns the reader does not otherwise use (q_lora_rank, ...): compared as text
        df[col] = df[col].fillna("").astype(str).str.strip() if col in df.columns else ""
    df = to_numbers(df, NUMERIC_COLUMNS, REQUIRED_COLUMNS, warnings)
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
        raise InputError("no usable rows in " + ", ".join(paths), warnings)

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
        df = read_table(path, warnings)
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
    df = to_numbers(df, numeric, ["tp", "context", "step_us"], warnings)
    df["variant"] = df["variant"].str.strip().str.lower()
    data_cols = [c for c in df.columns if not c.startswith("_")]
    df = df[~df.duplicated(subset=data_cols)].reset_index(drop=True)
    return Loaded(rows=df, warnings=warnings, files=paths)
