"""Synthetic sweep rows in the layout of docs/csv-schema.md (schema 2; the columns
the analysis reads, in the schema's order).

`row(...)` derives the plan columns from the shape with the method §4/§5 formulas and
the timing columns from the given kernel/all-reduce times, so every table the
report prints can be hand-computed from the arguments."""

from __future__ import annotations

import csv

COLUMNS = """schema_version run_id harness_version git_rev host mpi_library world_size date_utc
calib_read_gbs calib_triad_gbs calib_sgemm_gflops calib_fma_gflops calib_fma_width variant scope tp dp tp_group
context batch n_layer n_embd n_head head_dim rope_dim kv_lora_rank block_width kv_heads kv_dtype
threads kernel_isa timing_mode cold_cache kv_elems_per_token kv_bytes_per_token kv_bytes_per_rank
kernel_bytes_per_step kernel_flops_per_step weight_bytes_per_rank allreduce_bytes_per_step
allreduce_count_per_step validation validation_max_err warmup_steps timed_steps timer_resolution_us
step_us_median step_us_p10 step_us_p90 step_us_min step_us_max kernel_us_median kernel_us_p10
kernel_us_p90 allreduce_us_median tokens_per_s achieved_gbs achieved_gflops roofline_us
roofline_fraction""".split()

BYTES = {"f32": 4, "f16": 2, "bf16": 2}
CALIB = dict(calib_read_gbs=10.0, calib_triad_gbs=8.0, calib_sgemm_gflops=40.0, calib_fma_gflops=50.0,
             calib_fma_width="avx512")
# Schema 2 added calib_fma_width and kernel_isa; a schema-1 file is COLUMNS without them.
SCHEMA1_COLUMNS = [c for c in COLUMNS if c not in ("calib_fma_width", "kernel_isa")]


def shape(variant, n_head=64, d_h=128, d_r=64, d_c=512, n_kv=8):
    if variant in ("mha", "mqa", "gqa"):
        kvh = {"mha": n_head, "mqa": 1}.get(variant, n_kv)
        return dict(head_dim=d_h, rope_dim=0, kv_lora_rank=0, block_width=0, kv_heads=kvh)
    nb = {"mla": 1, "gla2": 2, "mlra2": 4, "mlra4": 4}[variant]
    return dict(head_dim=d_h, rope_dim=d_r, kv_lora_rank=d_c, block_width=d_c // nb, kv_heads=0)


def plan(variant, tp, s, n_head):
    """(cache elems per token, FLOP per token) on the busiest rank."""
    if s["kv_heads"]:
        kvh = s["kv_heads"] // tp if tp <= s["kv_heads"] else 1
        return 2 * kvh * s["head_dim"], (n_head // tp) * 4 * s["head_dim"]
    dl, dr = s["block_width"], s["rope_dim"]
    nb = s["kv_lora_rank"] // dl
    blocks = max(1, nb // tp)
    heads = {"mla": n_head // tp, "gla2": n_head // max(tp, 1) if tp >= 2 else n_head,
             "mlra4": n_head if tp <= 4 else n_head * 4 // tp,
             "mlra2": n_head // 2 if tp >= 2 else n_head}[variant]
    branches = blocks * heads if variant != "gla2" or tp >= 2 else n_head  # GLA-2 t=1: each head one branch
    if variant == "mlra2" and tp == 1:
        branches = 4 * n_head // 2
    return blocks * dl + dr, branches * (2 * (dl + dr) + 2 * dl)


def row(variant="mlra4", scope="kernel", tp=1, context=1024, kernel_us=100.0, allreduce_us=None,
        batch=1, dp=1, tp_group=0, n_layer=1, n_head=64, kv_dtype="bf16", date="2026-01-01T00:00:00Z",
        run_id="r1", host="node1", threads=1, n_embd=4096, step_us=None, **over):
    s = shape(variant, n_head=n_head)
    elems, flops_tok = plan(variant, tp, s, n_head)
    b = BYTES[kv_dtype]
    seqs = batch // dp
    kbytes = elems * b * context * seqs * n_layer
    kflops = flops_tok * context * seqs * n_layer
    layered = scope != "kernel"
    ar = (allreduce_us if allreduce_us is not None else (10.0 if tp > 1 else 0.0)) if layered else None
    step = step_us if step_us is not None else kernel_us + (ar or 0.0)
    # The harness's roofline_us: compute peak max(sgemm, FMA), sgemm alone when FMA is empty;
    # with CALIB max(40, 50) = 50 GFLOP/s. Calibration columns given in `over` count.
    cal = {**CALIB, **{k: v for k, v in over.items() if k in CALIB}}
    peak = max(float(v) for v in (cal["calib_sgemm_gflops"], cal["calib_fma_gflops"]) if v not in ("", None))
    roof = max(kbytes / (cal["calib_read_gbs"] * 1e3), kflops / (peak * 1e3))
    r = dict(schema_version=2, run_id=run_id, harness_version="0.1.0", git_rev="abc1234", host=host,
             mpi_library="Open MPI v4.1.4", world_size=tp * dp, date_utc=date, **CALIB, variant=variant,
             scope=scope, tp=tp, dp=dp, tp_group=tp_group, context=context, batch=batch, n_layer=n_layer,
             n_embd=n_embd, n_head=n_head, **s, kv_dtype=kv_dtype, threads=threads, kernel_isa="avx512", timing_mode="concurrent",
             cold_cache="false", kv_elems_per_token=elems, kv_bytes_per_token=elems * b,
             kv_bytes_per_rank=kbytes, kernel_bytes_per_step=kbytes, kernel_flops_per_step=kflops,
             weight_bytes_per_rank=0 if not layered else 1_000_000,
             allreduce_bytes_per_step=(n_embd * 4 * seqs * n_layer * 2 if layered and tp > 1 else 0),
             allreduce_count_per_step=(2 * n_layer if layered and tp > 1 else 0),
             validation="pass", validation_max_err=1e-6, warmup_steps=5, timed_steps=20,
             timer_resolution_us=0.001, step_us_median=step, step_us_p10=step * 0.95, step_us_p90=step * 1.1,
             step_us_min=step * 0.9, step_us_max=step * 1.3, kernel_us_median=kernel_us,
             kernel_us_p10=kernel_us * 0.95, kernel_us_p90=kernel_us * 1.1,
             allreduce_us_median="" if ar is None else ar, tokens_per_s=batch / step * 1e6,
             achieved_gbs=kbytes / kernel_us / 1e3, achieved_gflops=kflops / kernel_us / 1e3,
             roofline_us=roof, roofline_fraction=roof / kernel_us)
    r.update(over)
    return r


def write_csv(path, rows, columns=COLUMNS):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return str(path)


def sweep(seed_scale=1.0):
    """A small but complete sweep: 5 variants × t ∈ {1,2,4} × 3 contexts × 2 scopes,
    kernel time = 1.25 × the roofline bound on the CALIB machine."""
    rows = []
    for scope in ("kernel", "layer"):
        for v in ("gqa", "mla", "gla2", "mlra2", "mlra4"):
            for tp in (1, 2, 4):
                for L in (1024, 8192, 65536):
                    r = row(v, scope, tp, L)
                    k = 1.25 * r["roofline_us"] * seed_scale + 2.0
                    ar = 5.0 + 0.01 * tp if tp > 1 else 0.0
                    rows.append(row(v, scope, tp, L, kernel_us=k, allreduce_us=ar))
    return rows
