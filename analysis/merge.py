"""Read sweep CSVs and raw samples files, validate them against schema 7 (or 6, 5, 4, 3, 2, 1)
and merge them. Nothing here fails on bad input: every unusable file or row becomes
a warning (printed to stderr by the CLI and listed in the report). Only a path
that does not exist is fatal (`InputError`). Files, lines and cells are read by
`reader`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd

from .noise import NOISE_ROW_COLUMNS
from .reader import InputError, expand_paths, read_table, to_numbers  # noqa: F401 (InputError: merge's API)

SCHEMA_VERSION = 7
# Versions this reader takes: schema 1 lacks the columns of SINCE_SCHEMA_2 and later,
# schema 2 those of SINCE_SCHEMA_3 and later, schema 3 those of SINCE_SCHEMA_4; they
# stay empty for its rows (`device` reads as cpu: every row before schema 4 is a cpu row),
# schema 4 those of SINCE_SCHEMA_5, schema 5 those of SINCE_SCHEMA_6 (read from its
# `tokens_per_s`: see throughput_columns), schema 6 those of SINCE_SCHEMA_7 (`kernel_math`
# reads as f32 on its cpu rows: every CPU product was f32 before `--math`; `collective` as
# mpi: every row before schema 7 used MPI).
KNOWN_SCHEMA_VERSIONS = ("1", "2", "3", "4", "5", "6", "7")
SINCE_SCHEMA_2 = ["calib_fma_width", "kernel_isa"]
SINCE_SCHEMA_3 = ["config_id", "array_task", "array_count", "calib_source", "seed"]
GPU_TEXT_COLUMNS = ["gpu_kernel", "gpu_name", "gpu_uuid", "gpu_pci_bus_id", "gpu_driver"]
GPU_NUMERIC_COLUMNS = ["gpu_sm_clock_mhz", "gpu_mem_clock_mhz", "gpu_ranks_sharing", "gpu_calib_read_gbs",
                       "gpu_calib_copy_gbs", "gpu_calib_tensor_tflops", "gpu_calib_fma_tflops"]
SINCE_SCHEMA_4 = ["device"] + GPU_TEXT_COLUMNS + GPU_NUMERIC_COLUMNS
# Where a TP group ran (group_nodes, group_hosts) and the run's noise probe.
NODE_COLUMNS = ["group_nodes", "group_hosts"]
SINCE_SCHEMA_5 = NOISE_ROW_COLUMNS + NODE_COLUMNS
# Schema 6 split `tokens_per_s` (the job's total, repeated on every TP group's row) into
# the group's figure and the job's, so that a sum over rows no longer overcounts.
THROUGHPUT_COLUMNS = ["group_tokens_per_s", "job_tokens_per_s"]
SINCE_SCHEMA_6 = THROUGHPUT_COLUMNS
# Schema 7 records which math the CPU kernel's products ran in and the check's tolerance,
# the all-reduce's library (--collective) and the path its data took.
COLLECTIVE_COLUMNS = ["collective", "allreduce_path"]
SINCE_SCHEMA_7 = ["kernel_math", "validation_atol", "validation_rtol"] + COLLECTIVE_COLUMNS
OLD_THROUGHPUT_COLUMN = "tokens_per_s"

TEXT_COLUMNS = [
    "run_id", "harness_version", "git_rev", "host", "mpi_library", "date_utc",
    "calib_fma_width", "variant", "scope", "kv_dtype", "kernel_isa", "kernel_math", "timing_mode", "cold_cache", "validation",
    "config_id", "calib_source", "seed",   # seed is text: a 64-bit seed does not survive a float
    "array_task", "array_count",           # which Slurm array task wrote a row: labels, not measurements
    "device", *GPU_TEXT_COLUMNS, *COLLECTIVE_COLUMNS,
    "group_hosts",                         # the TP group's nodes' host names, ';'-separated
]
NUMERIC_COLUMNS = [
    "world_size", "calib_read_gbs", "calib_triad_gbs", "calib_sgemm_gflops", "calib_fma_gflops",
    "tp", "dp", "tp_group", "context", "batch", "n_layer", "n_embd", "n_head", "head_dim",
    "rope_dim", "kv_lora_rank", "block_width", "kv_heads", "threads",
    "kv_elems_per_token", "kv_bytes_per_token", "kv_bytes_per_rank", "kernel_bytes_per_step",
    "kernel_flops_per_step", "weight_bytes_per_rank", "allreduce_bytes_per_step",
    "allreduce_count_per_step", "validation_max_err", "validation_atol", "validation_rtol", "warmup_steps", "timed_steps",
    "timer_resolution_us", "step_us_median", "step_us_p10", "step_us_p90", "step_us_min",
    "step_us_max", "kernel_us_median", "kernel_us_p10", "kernel_us_p90", "allreduce_us_median",
    *THROUGHPUT_COLUMNS, "achieved_gbs", "achieved_gflops", "roofline_us", "roofline_fraction",
    *GPU_NUMERIC_COLUMNS, *NOISE_ROW_COLUMNS,
    "group_nodes",
]
# A row without any of these cannot go into any table; the rest may be empty.
REQUIRED_COLUMNS = [
    "schema_version", "date_utc", "variant", "scope", "tp", "dp", "tp_group", "context",
    "batch", "n_layer", "n_head", "kv_dtype", "step_us_median",
]
# docs/resume-key.txt, through the package's data/resume-key.txt (a link in a checkout, a copy when installed).
RESUME_KEY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "resume-key.txt")


def read_resume_key(path: str = RESUME_KEY_FILE) -> list[str]:
    """The harness's resume key (docs/resume-key.txt, held to the Swift definition by a test)."""
    with open(path, encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]


# What identifies a measured configuration: the harness's resume key, per TP group
# (one row each), and per host (the same configuration on two machines is two
# measurements). Rows that agree on all of these but not on run_id (or `repeat`) are
# repeats or reruns of one measurement: all are kept (UNIT_KEY).
# The harness's key also holds `repeat` (so a killed run resumes at its repeat); here
# repeats of one configuration are one configuration, told apart by UNIT_KEY.
CONFIG_KEY = [c for c in read_resume_key() if c != "repeat"] + ["tp_group", "host"]
# A configuration as the tables show it: TP groups and hosts merged (tables.collapse_groups).
MEASUREMENT_KEY = [c for c in CONFIG_KEY if c not in ("tp_group", "host")]
# Columns a newer harness may add; absent ones are empty, without a warning. `repeat`
# numbers the repeats of one configuration within one run; `imbalance_us_median` is the
# wait for the slowest rank, split off the collective time in `allreduce_us_median`.
OPTIONAL_TEXT_COLUMNS = ["repeat"]
OPTIONAL_NUMERIC_COLUMNS = ["imbalance_us_median", "allreduce_us_p10", "allreduce_us_p90"]
# One measurement: a row of one run (and repeat) of a configuration on one TP group.
UNIT_KEY = CONFIG_KEY + ["run_id", "repeat"]
SAMPLES_COLUMNS = [
    "run_id", "variant", "scope", "tp", "tp_group", "context", "batch", "n_head",
    "kv_lora_rank", "kv_dtype", "threads", "timing_mode", "step_index", "step_us",
    "kernel_us", "allreduce_us",
]
DTYPE_BYTES = {"f32": 4, "f16": 2, "bf16": 2}
DEVICES = ("cpu", "cuda")


@dataclass
class Loaded:
    rows: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def throughput_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A file of schema 5 or older: its `tokens_per_s` (the job's total, summed over the dp
    replicas) is `job_tokens_per_s`; `group_tokens_per_s` is derived in load_sweeps."""
    if OLD_THROUGHPUT_COLUMN in df.columns and "job_tokens_per_s" not in df.columns:
        df = df.rename(columns={OLD_THROUGHPUT_COLUMN: "job_tokens_per_s"})
    return df


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
        df = throughput_columns(df)
        absent = [c for c in TEXT_COLUMNS + NUMERIC_COLUMNS if c not in df.columns]
        if (version == "1").all():   # schema 1 never had these
            absent = [c for c in absent if c not in SINCE_SCHEMA_2]
        if version.isin(["1", "2"]).all():   # nor schema 2 these
            absent = [c for c in absent if c not in SINCE_SCHEMA_3]
        if version.isin(["1", "2", "3"]).all():   # nor schema 3 these
            absent = [c for c in absent if c not in SINCE_SCHEMA_4]
        if version.isin(["1", "2", "3", "4"]).all():   # nor schema 4 these
            absent = [c for c in absent if c not in SINCE_SCHEMA_5]
        if version.isin(["1", "2", "3", "4", "5"]).all():   # nor schema 5 these (derived below)
            absent = [c for c in absent if c not in SINCE_SCHEMA_6]
        if version.isin(["1", "2", "3", "4", "5", "6"]).all():   # nor schema 6 these
            absent = [c for c in absent if c not in SINCE_SCHEMA_7]
        if "kernel_math" not in df.columns:   # before schema 7 every product was f32, but a cuda kernel's
            device = df["device"].astype(str).str.strip() if "device" in df.columns else pd.Series("", index=df.index)
            scope = df["scope"].astype(str).str.strip().str.lower()
            df["kernel_math"] = ["" if d == "cuda" and s == "kernel" else "f32" for d, s in zip(device, scope)]
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
    for col in TEXT_COLUMNS + NUMERIC_COLUMNS + OPTIONAL_TEXT_COLUMNS + OPTIONAL_NUMERIC_COLUMNS:
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].fillna("")   # a column only some files have (a newer schema) is empty in the others
    for col in CONFIG_KEY:   # key columns the reader does not otherwise use (q_lora_rank, ...): compared as text
        df[col] = df[col].fillna("").astype(str).str.strip() if col in df.columns else ""
    df = to_numbers(df, NUMERIC_COLUMNS + OPTIONAL_NUMERIC_COLUMNS, REQUIRED_COLUMNS, warnings)
    df["variant"] = df["variant"].str.strip().str.lower()
    df["scope"] = df["scope"].str.strip().str.lower()
    df["kv_dtype"] = df["kv_dtype"].str.strip().str.lower()
    # Rows before schema 4 ran on the CPU: the same configuration rerun in schema 4 (device
    # cpu) is the same measurement, so the key compares them as equals.
    df["device"] = df["device"].astype(str).str.strip().str.lower().replace("", "cpu")
    # Likewise every row before schema 7 used MPI for its all-reduces.
    df["collective"] = df["collective"].astype(str).str.strip().str.lower().replace("", "mpi")
    unknown_dtype = ~df["kv_dtype"].isin(DTYPE_BYTES)
    for i in df.index[unknown_dtype]:
        warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: kv_dtype={df.at[i, 'kv_dtype']!r} unknown; row skipped")
    df = df[~unknown_dtype]
    unknown_device = ~df["device"].isin(DEVICES)
    for i in df.index[unknown_device]:
        warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: device={df.at[i, 'device']!r} unknown; row skipped")
    df = df[~unknown_device]
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
    # Repeats and reruns (the same configuration, another run_id or `repeat`) are all kept:
    # tables merge them into one median with an interval (stats.py). Only two rows of one
    # run and repeat are one measurement written twice; the latest by date_utc is kept.
    df = df.assign(_date=pd.to_datetime(df["date_utc"], errors="coerce", utc=True))
    for i in df.index[df["_date"].isna()]:
        warnings.append(f"{df.at[i, '_file']}:{df.at[i, '_line']}: date_utc={df.at[i, 'date_utc']!r} is not ISO-8601; "
                        "treated as oldest when de-duplicating rows of one run")
    df = df.sort_values("_date", kind="stable", na_position="first")
    rewritten = df.duplicated(subset=UNIT_KEY, keep="last")
    if rewritten.any():
        notes.append(f"dropped {int(rewritten.sum())} older row(s) of a configuration written again by the same run "
                     "(same run_id, repeat, host and resume-key columns); kept the latest by date_utc")
    df = df[~rewritten].drop(columns="_date").sort_values(["scope", "variant", "tp", "context", "batch"], kind="stable")
    repeated = df.duplicated(subset=MEASUREMENT_KEY, keep=False)
    if repeated.any():
        n_configs = df[repeated].groupby(MEASUREMENT_KEY, dropna=False).ngroups
        notes.append(f"kept {int(repeated.sum())} row(s) measuring {n_configs} configuration(s) more than once "
                     "(TP groups, repeats, reruns): each configuration is one median with a bootstrap interval "
                     "over them")
    df = df.reset_index(drop=True)
    df["dtype_bytes"] = df["kv_dtype"].map(DTYPE_BYTES)
    df["seqs_per_group"] = df["batch"] / df["dp"].where(df["dp"] > 0, 1)
    # Rows before schema 6 have no group figure: the group's sequences over its median step,
    # as the harness computes it.
    derived = df["group_tokens_per_s"].isna()
    df.loc[derived, "group_tokens_per_s"] = df["seqs_per_group"] / df["step_us_median"] * 1e6
    df["_config"] = ["\x1f".join(map(str, k)) for k in df[MEASUREMENT_KEY].itertuples(index=False)]
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
