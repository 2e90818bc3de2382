"""The report's tables, each a pandas DataFrame computed from merged rows.

Rows of one configuration measured by several TP groups (dp > 1) are collapsed
to the median over groups first (`collapse_groups`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import model
from .merge import CONFIG_KEY

LABEL = {"mha": "MHA", "mqa": "MQA", "gqa": "GQA", "mla": "MLA", "gla2": "GLA-2",
         "mlra2": "MLRA-2", "mlra4": "MLRA-4"}
ORDER = ["mha", "mqa", "gqa", "mla", "gla2", "mlra2", "mlra4"]
# Paper's Table 1 shape (SPEC §4).
PAPER_SHAPE = dict(n_head=64, head_dim=128, rope_dim=64, kv_lora_rank=512)
PAPER_KV_HEADS = {"mha": 64, "gqa": 8}
# Configuration columns besides the variant's own shape: rows that agree on these
# are comparable across variants (speedups) or across TP degrees (scaling).
COMMON = ["scope", "context", "batch", "n_layer", "n_embd", "n_head", "kv_dtype", "threads",
          "timing_mode", "cold_cache"]


def variant_key(v: str) -> int:
    return ORDER.index(v) if v in ORDER else len(ORDER)


def collapse_groups(rows: pd.DataFrame) -> pd.DataFrame:
    key = [c for c in CONFIG_KEY if c not in ("tp_group", "host")]
    num = rows.select_dtypes("number").columns.difference(key)
    agg = {c: "median" for c in num}
    agg.update({c: "first" for c in rows.columns if c not in num and c not in key})
    out = rows.groupby(key, dropna=False, sort=False).agg(agg).reset_index()
    out["groups"] = rows.groupby(key, dropna=False, sort=False).size().to_numpy()
    return out


def kv_table(rows: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per-device KV bytes per token against TP, cross-checked three ways:
    elems × dtype bytes = bytes; plan recomputed from the shape columns (SPEC §4);
    kernel_bytes_per_step = bytes × context × sequences × layers; and the paper's
    Table 1 where the shape is the paper's."""
    recs = []
    shape_cols = ["variant", "tp", "n_head", "head_dim", "rope_dim", "kv_lora_rank", "block_width",
                  "kv_heads", "kv_dtype"]
    for key, g in rows.groupby(shape_cols, sort=False, dropna=False):
        r = dict(zip(shape_cols, key))
        problems = []
        elems = g["kv_elems_per_token"].unique()
        byts = g["kv_bytes_per_token"].unique()
        if len(elems) > 1 or len(byts) > 1:
            problems.append(f"rows disagree: elems {sorted(elems)}, bytes {sorted(byts)}")
        e, b = float(elems[0]), float(byts[0])
        if np.isnan(e) or np.isnan(b):
            problems.append("kv_elems/bytes_per_token missing")
        db = int(g["dtype_bytes"].iloc[0])
        if e * db != b:
            problems.append(f"elems×{db} = {e * db:g} ≠ bytes {b:g}")
        try:
            plan = model.kv_elems_per_token(r["variant"], int(r["tp"]), int(r["head_dim"]), int(r["rope_dim"]),
                                            int(r["kv_lora_rank"]), int(r["block_width"]), int(r["kv_heads"]))
        except (ValueError, ZeroDivisionError, KeyError):
            plan = np.nan
        if plan != e:
            problems.append(f"SPEC §4 plan gives {plan:g} elems")
        expect = g["kv_bytes_per_token"] * g["context"] * g["seqs_per_group"] * g["n_layer"]
        off = (expect != g["kernel_bytes_per_step"]).sum()
        if off:
            problems.append(f"kernel_bytes_per_step ≠ bytes×context×seqs×layers in {off} row(s)")
        paper_dh = np.nan
        if all(r[k] == v for k, v in PAPER_SHAPE.items() if not (r["variant"] in model.GROUPED and k in ("rope_dim", "kv_lora_rank"))) \
                and PAPER_KV_HEADS.get(r["variant"], r["kv_heads"]) == r["kv_heads"]:
            hit = paper[(paper["variant"] == r["variant"]) & (paper["tp"] == r["tp"])]
            if len(hit):
                paper_dh = float(hit["elems_in_dh"].iloc[0])
                if paper_dh * 128 != e:
                    problems.append(f"paper Table 1 gives {paper_dh:g}·d_h = {paper_dh * 128:g} elems")
        recs.append(dict(variant=LABEL.get(r["variant"], r["variant"]), tp=int(r["tp"]), n_head=int(r["n_head"]),
                         shape=_shape(r), kv_dtype=r["kv_dtype"], kv_elems_per_token=e,
                         kv_bytes_per_token=b, in_d_h=e / r["head_dim"] if r["head_dim"] else np.nan,
                         plan_elems=plan, paper_in_d_h=paper_dh,
                         check="ok" if not problems else "**MISMATCH**: " + "; ".join(problems),
                         _v=variant_key(r["variant"])))
    out = pd.DataFrame(recs)
    return out.sort_values(["_v", "n_head", "shape", "kv_dtype", "tp"]).drop(columns="_v").reset_index(drop=True)


def _shape(r) -> str:
    if r["variant"] in model.GROUPED:
        return f"n_kv={_whole(r['kv_heads'])} d_h={_whole(r['head_dim'])}"
    return f"d_c={_whole(r['kv_lora_rank'])} d_l={_whole(r['block_width'])} d_r={_whole(r['rope_dim'])}"


def _whole(x) -> str:
    """A count for a label; "–" for an empty cell (the reader leaves refused values empty)."""
    return "–" if pd.isna(x) else str(int(x))


def column_label(v: str, tp, kv_heads=None) -> str:
    return f"{LABEL.get(v, v)} t={int(tp)}"


def pivot_by_variant(rows: pd.DataFrame, value: str, index: list[str]) -> pd.DataFrame:
    """Wide table: one row per `index`, one column per (variant, tp)."""
    df = rows.assign(_col=[column_label(v, t) for v, t in zip(rows["variant"], rows["tp"])],
                     _v=rows["variant"].map(variant_key))
    cols = df.sort_values(["_v", "tp"]).drop_duplicates("_col")["_col"].tolist()
    wide = df.pivot_table(index=index, columns="_col", values=value, aggfunc="median")
    return wide.reindex(columns=cols).reset_index()


def latency_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Median step time (µs) against context per variant at its TP degree."""
    return pivot_by_variant(rows, "step_us_median", ["scope", "kv_dtype", "batch", "n_head", "context"])


def throughput_table(rows: pd.DataFrame) -> pd.DataFrame:
    return pivot_by_variant(rows, "tokens_per_s", ["scope", "kv_dtype", "batch", "n_head", "context"])


def speedup_table(rows: pd.DataFrame) -> pd.DataFrame:
    """T(other)/T(MLRA-4) from step_us_median at the same TP degree and the same
    common configuration (scope, context, batch, layers, width, heads, dtype, threads, timing)."""
    key = COMMON + ["tp"]
    base = rows[rows["variant"] == "mlra4"]
    out = base[key + ["step_us_median"]].rename(columns={"step_us_median": "MLRA-4 µs"})
    for v in ["mla", "gla2", "gqa"]:
        other = rows[rows["variant"] == v][key + ["step_us_median"]].groupby(key, dropna=False).median().reset_index()
        out = out.merge(other.rename(columns={"step_us_median": f"_{v}"}), on=key, how="left")
        out[f"{LABEL[v]}/MLRA-4"] = out[f"_{v}"] / out["MLRA-4 µs"]
        out = out.drop(columns=f"_{v}")
    show = ["scope", "tp", "kv_dtype", "batch", "n_head", "context", "MLRA-4 µs",
            "MLA/MLRA-4", "GLA-2/MLRA-4", "GQA/MLRA-4"]
    return out[show].sort_values(["scope", "tp", "kv_dtype", "batch", "n_head", "context"]).reset_index(drop=True)


def efficiency_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Achieved bandwidth and FLOP rate of the kernel, against the measured roofs: read
    bandwidth and the compute peak max(sgemm, FMA) of `model.compute_peak_gflops`, as in
    the harness's roofline_us."""
    df = rows.copy()
    df["intensity"] = df["kernel_flops_per_step"] / df["kernel_bytes_per_step"]
    df["% read BW"] = 100 * df["achieved_gbs"] / df["calib_read_gbs"]
    peak = model.compute_peak_gflops(df)
    df["% peak"] = 100 * df["achieved_gflops"] / peak
    ridge = peak / df["calib_read_gbs"]
    df["bound"] = np.where(df["intensity"] > ridge, "compute", "bandwidth")
    # Cross-checks: the CSV's rates against its own bytes, FLOPs and kernel time, and the roof.
    gbs = df["kernel_bytes_per_step"] / df["kernel_us_median"] / 1e3
    gfl = df["kernel_flops_per_step"] / df["kernel_us_median"] / 1e3
    notes = []
    for i in df.index:
        n = []
        if not np.isclose(gbs[i], df.at[i, "achieved_gbs"], rtol=1e-3):
            n.append(f"GB/s ≠ bytes/time ({gbs[i]:.4g})")
        if not np.isclose(gfl[i], df.at[i, "achieved_gflops"], rtol=1e-3):
            n.append(f"GFLOP/s ≠ FLOPs/time ({gfl[i]:.4g})")
        if df.at[i, "roofline_fraction"] > 1.05:
            n.append("**faster than the measured roof**")
        notes.append("; ".join(n) or "ok")
    df["check"] = notes
    df["variant"] = df["variant"].map(lambda v: LABEL.get(v, v))
    cols = ["scope", "variant", "tp", "kv_dtype", "batch", "context", "kernel_us_median", "intensity",
            "achieved_gbs", "% read BW", "achieved_gflops", "% peak", "roofline_fraction", "bound", "check"]
    return df[cols].rename(columns={"intensity": "FLOP/byte", "achieved_gbs": "GB/s",
                                    "achieved_gflops": "GFLOP/s", "kernel_us_median": "kernel µs"})


def scaling_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Strong scaling: the same work per TP group (sequences per group) on t ranks.
    speedup = T(1)/T(t), efficiency = T(1)/(t·T(t)), from step_us_median."""
    key = ["variant", "seqs_per_group"] + [c for c in COMMON if c != "batch"] + \
          ["head_dim", "rope_dim", "kv_lora_rank", "block_width", "kv_heads"]
    one = rows[rows["tp"] == 1][key + ["step_us_median"]].rename(columns={"step_us_median": "T1"})
    one = one.groupby(key, dropna=False).median().reset_index()
    df = rows.merge(one, on=key, how="inner")
    df["speedup"] = df["T1"] / df["step_us_median"]
    df["efficiency"] = df["T1"] / (df["tp"] * df["step_us_median"])
    df["_v"] = df["variant"].map(variant_key)
    df["variant"] = df["variant"].map(lambda v: LABEL.get(v, v))
    df = df.sort_values(["scope", "_v", "kv_dtype", "seqs_per_group", "context", "tp"])
    return df[["scope", "variant", "kv_dtype", "seqs_per_group", "context", "tp", "step_us_median",
               "speedup", "efficiency"]].rename(columns={"seqs_per_group": "seqs/group", "step_us_median": "step µs"}
                                               ).reset_index(drop=True)


def allreduce_table(rows: pd.DataFrame) -> pd.DataFrame:
    df = rows[rows["scope"].isin(["layer", "model"]) & rows["allreduce_us_median"].notna()].copy()
    df["share %"] = 100 * df["allreduce_us_median"] / df["step_us_median"]
    df["variant"] = df["variant"].map(lambda v: LABEL.get(v, v))
    return df[["scope", "variant", "tp", "n_layer", "batch", "context", "allreduce_bytes_per_step",
               "allreduce_count_per_step", "allreduce_us_median", "step_us_median", "share %"]
              ].rename(columns={"allreduce_bytes_per_step": "AR bytes", "allreduce_count_per_step": "AR calls",
                                "allreduce_us_median": "AR µs", "step_us_median": "step µs"}).reset_index(drop=True)


def model_vs_measured(rows: pd.DataFrame, hw: model.Hardware) -> pd.DataFrame:
    pred = model.predict_rows(rows, hw)
    df = rows.assign(pred_kernel=pred["kernel_us"], pred_step=pred["step_us"], bound=pred["bound"])
    df["measured/pred"] = df["step_us_median"] / df["pred_step"]
    df["variant"] = df["variant"].map(lambda v: LABEL.get(v, v))
    return df[["scope", "variant", "tp", "kv_dtype", "batch", "context", "pred_kernel", "kernel_us_median",
               "pred_step", "step_us_median", "measured/pred", "bound"]].rename(
        columns={"pred_kernel": "model kernel µs", "kernel_us_median": "kernel µs",
                 "pred_step": "model step µs", "step_us_median": "step µs"}).reset_index(drop=True)


def paper_comparison(paper: pd.DataFrame, hw: model.Hardware = model.H100) -> pd.DataFrame:
    """The model's prediction for the paper's shapes next to the paper's latencies."""
    recs = []
    for label, g in paper.groupby("context_label", sort=False):
        rec = {"context": label, "L (tokens)": int(g["context"].iloc[0])}
        for r in g.itertuples():
            b, f = model.paper_shape_cost(r.variant, int(r.context))
            rec[f"{LABEL[r.variant]} model"] = model.predict(b, f, hw)["kernel_us"]
            rec[f"{LABEL[r.variant]} paper"] = r.latency_us
        for src in ("model", "paper"):
            rec[f"MLA/MLRA-4 {src}"] = rec[f"MLA {src}"] / rec[f"MLRA-4 {src}"]
            rec[f"GQA/MLRA-4 {src}"] = rec[f"GQA {src}"] / rec[f"MLRA-4 {src}"]
        recs.append(rec)
    return pd.DataFrame(recs)


def crossover_table(rows: pd.DataFrame, presets: list[model.Hardware]) -> pd.DataFrame:
    """Heads per branch at which MLA (one d_c block) and an MLRA-4 block (d_c/4) turn
    compute-bound, for the CSV's latent shape and dtypes (or the paper's, if none)."""
    lat = rows[rows["variant"].isin(model.LATENT)]
    # A shape with an empty (refused) cell has no crossover to compute.
    shapes = lat[["kv_lora_rank", "rope_dim", "kv_dtype", "dtype_bytes"]].dropna().drop_duplicates()
    if shapes.empty:
        shapes = pd.DataFrame([dict(kv_lora_rank=512, rope_dim=64, kv_dtype="bf16", dtype_bytes=2)])
    recs = []
    for hw in presets:
        for s in shapes.itertuples():
            for name, dl in (("MLA", s.kv_lora_rank), ("MLRA-4 block", s.kv_lora_rank / 4)):
                recs.append({"hardware": hw.name, "ridge FLOP/B": hw.ridge, "kernel": name,
                             "d_l": int(dl), "d_r": int(s.rope_dim), "kv_dtype": s.kv_dtype,
                             "FLOP/B per head": (4 * dl + 2 * s.rope_dim) / ((dl + s.rope_dim) * s.dtype_bytes),
                             "compute-bound above heads": model.crossover_heads(hw, dl, s.rope_dim, s.dtype_bytes)})
    return pd.DataFrame(recs)


def gpu_table(rows: pd.DataFrame) -> pd.DataFrame:
    """cuda rows: the launched step, the graph-replayed kernel and the launch overhead
    between them, the GPU, and the roofline columns as the harness wrote them (held
    to the row's GPU calibration)."""
    df = rows.assign(launch_us=rows["step_us_median"] - rows["kernel_us_median"],
                     _v=rows["variant"].map(variant_key))
    df = df.sort_values(["_v", "tp", "kv_dtype", "batch", "context"], kind="stable")
    df["variant"] = df["variant"].map(lambda v: LABEL.get(v, v))
    cols = {"variant": "variant", "tp": "tp", "context": "context", "batch": "batch", "n_head": "heads",
            "kv_dtype": "dtype", "gpu_name": "GPU", "gpu_ranks_sharing": "ranks/GPU", "step_us_median": "step µs",
            "kernel_us_median": "graph µs", "launch_us": "launch µs", "achieved_gbs": "GB/s",
            "gpu_calib_read_gbs": "read roof GB/s", "roofline_us": "roofline µs", "roofline_fraction": "fraction"}
    return df[list(cols)].rename(columns=cols).reset_index(drop=True)
