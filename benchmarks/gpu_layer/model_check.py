#!/usr/bin/env python3
"""Issue 12's model-scope GPU check, after `sweep --spec model_check.json` (run_model_check.sh).

`forward` and `generate` with --device cuda at mpirun -n 1, 2, 4 against the same commands on
the CPU at -n 1, for every variant (the shapes of model_check.json):
  forward  (f32 cache, 6 tokens, prefill 2): y within Tolerance.gpuLayerOutput(f32) of the CPU's
           (atol 4e-5, rtol 4e-4); all-reduces as the plan says (one per call, none at n = 1).
  generate (bf16 cache, prompt 3,1,4,1,5, 6 tokens): logits within gpuLayerOutput(bf16)
           (atol 0.033 x the largest |logit|, rtol 0.07) of the CPU's; ids equal up to the first
           step whose CPU top-2 gap is within twice the largest logit difference of the two runs
           (beyond it the argmax cannot differ); 2 all-reduces a layer a call and one gather a
           call at n > 1.
and the sweep's CSV: one passed row per replica of every configuration, with the plan's
all-reduces. Prints one line per check, then "model check: P passed, F failed".
Python 3 standard library only. Usage: model_check.py MLRA OUTDIR SWEEP_CSV
"""
import json, os, random, struct, subprocess, sys, csv

mlra, out, sweep_csv = sys.argv[1], sys.argv[2], sys.argv[3]
# MODEL_CHECK_DEVICE=cpu runs the "cuda" side on the CPU: a check of this script without a GPU.
GPU = os.environ.get("MODEL_CHECK_DEVICE", "cuda")
D, T, PREFILL, STEPS, LAYERS, VOCAB = 256, 6, 2, 6, 2, 1000
LATENT = '"n_head": 8, "q_lora_rank": 128, "kv_lora_rank": 256, "qk_nope_head_dim": 64, "qk_rope_head_dim": 32'
BODIES = {"mha": '"n_head": 8, "head_dim": 64', "mqa": '"n_head": 8, "head_dim": 64',
          "gqa": '"n_head": 8, "head_dim": 64, "group_size": 4',
          "mla": LATENT, "gla2": LATENT, "mlra2": LATENT, "mlra4": LATENT}
passed = failed = 0


def report(ok, what):
    global passed, failed
    passed, failed = passed + ok, failed + (not ok)
    print(("PASS " if ok else "FAIL ") + what, flush=True)


def read_tensor(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    a, b = header[name]["data_offsets"]
    return list(struct.unpack("<%df" % ((b - a) // 4), data[a:b]))


def write_x(path, values, rows):
    header = json.dumps({"x": {"dtype": "F32", "shape": [rows, D], "data_offsets": [0, 4 * len(values)]}}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + struct.pack("<%df" % len(values), *values))


def run(n, args):
    cmd = ["mpirun", "-n", str(n), "--oversubscribe", mlra] + args
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        r = subprocess.CompletedProcess(cmd, 124, e.stdout or "", "timed out after 60 s")
    with open(os.path.join(out, "model_check.log"), "a") as log:
        log.write("$ %s\nrc %d\n%s%s\n" % (" ".join(cmd), r.returncode, r.stdout, r.stderr))
    return r


def stats(stdout):
    return json.loads(next(l for l in stdout.splitlines() if l.startswith("stats: "))[7:])


def worst(x, ref, atol, rtol):
    """Largest |x - ref| - (atol + rtol |ref|) (> 0: a violation) and the largest |x - ref|."""
    if len(x) != len(ref):
        return float("inf"), float("inf")
    excess = max(abs(a - b) - (atol + rtol * abs(b)) for a, b in zip(x, ref))
    return excess, max(abs(a - b) for a, b in zip(x, ref))


random.seed(12)
write_x(os.path.join(out, "x.safetensors"), [random.uniform(-1, 1) for _ in range(T * D)], T)
for v, body in BODIES.items():
    layer = os.path.join(out, "layer-%s.json" % v)
    model = os.path.join(out, "model-%s.json" % v)
    with open(layer, "w") as f:
        f.write('{"variant": "%s", "n_embd": %d, %s}' % (v, D, body))
    with open(model, "w") as f:
        f.write('{"variant": "%s", "n_embd": %d, %s, "n_layer": %d, "intermediate_size": 512, "vocab_size": %d}'
                % (v, D, body, LAYERS, VOCAB))

    # forward: the layer on the GPU against the CPU's y.
    ys = {}
    for device, n in [("cpu", 1), ("cuda", 1), ("cuda", 2), ("cuda", 4)]:
        y = os.path.join(out, "y-%s-%s-%d.safetensors" % (v, device, n))
        r = run(n, ["forward", "--config", layer, "--seed", "7", "--input", os.path.join(out, "x.safetensors"),
                    "--prefill", str(PREFILL), "--kv-dtype", "f32", "--out", y, "--device", device if device == "cpu" else GPU,
                    "--stats", "--check"])
        if r.returncode != 0:
            report(False, "forward %s %s n=%d: rc %d: %s" % (v, device, n, r.returncode, r.stderr.strip()[-300:]))
            continue
        ys[(device, n)] = read_tensor(y, "y")
        s = stats(r.stdout)
        calls = 1 + T - PREFILL if n > 1 else 0
        ok = s["allreduce_calls"] == [calls] * n and s["allgather_calls"] == [0] * n
        ref = next((l for l in r.stdout.splitlines() if l.startswith("max |y")), "")
        if device == "cuda" and ("cpu", 1) in ys:
            excess, err = worst(ys[(device, n)], ys[("cpu", 1)], 4e-5, 4e-4)
            report(ok and excess <= 0, "forward %s cuda n=%d: max |y - y_cpu| %.3g; %s; all-reduces %s (plan %d each)"
                   % (v, n, err, ref, s["allreduce_calls"], calls))

    # generate: the model on the GPU against the CPU's logits and ids.
    runs = {}
    for device, n in [("cpu", 1), ("cuda", 1), ("cuda", 2), ("cuda", 4)]:
        lo = os.path.join(out, "logits-%s-%s-%d.safetensors" % (v, device, n))
        r = run(n, ["generate", "--config", model, "--seed", "13", "--prompt", "3,1,4,1,5", "--tokens", str(STEPS),
                    "--kv-dtype", "bf16", "--logits-out", lo, "--device", device if device == "cpu" else GPU, "--stats"])
        if r.returncode != 0:
            report(False, "generate %s %s n=%d: rc %d: %s" % (v, device, n, r.returncode, r.stderr.strip()[-300:]))
            continue
        ids = [int(t) for t in r.stdout.splitlines()[0].split(",")]
        runs[(device, n)] = (ids, read_tensor(lo, "logits"), stats(r.stdout))
        if device == "cpu" or ("cpu", 1) not in runs:
            continue
        base_ids, base, _ = runs[("cpu", 1)]
        scale = max(1.0, max(abs(x) for x in base))
        atol, rtol = 0.033 * scale, 0.07
        excess, err = worst(runs[(device, n)][1], base, atol, rtol)
        # Where the CPU's top-2 gap exceeds twice the largest difference between the two runs'
        # logits, the argmax cannot differ; stop at the first step where it could.
        agreed = 0
        for k in range(STEPS):
            row = sorted(base[k * VOCAB:(k + 1) * VOCAB], reverse=True)
            if row[0] - row[1] <= 2 * err:
                break   # a near tie may go either way; later steps then see other tokens
            if ids[k] != base_ids[k]:
                agreed = -1
                break
            agreed += 1
        s = runs[(device, n)][2]
        plan_ok = n == 1 or (s["allreduce_calls"] == [2 * LAYERS * STEPS] * n and s["allgather_calls"] == [STEPS] * n)
        report(excess <= 0 and agreed >= 0 and plan_ok,
               "generate %s cuda n=%d: max |logits - cpu| %.3g (scale %.3g); ids %s vs cpu %s (%s steps held); "
               "all-reduces %s, gathers %s" % (v, n, err, scale, ids, base_ids, agreed if agreed >= 0 else "DIFFER",
                                               s["allreduce_calls"], s["allgather_calls"]))

# The sweep's model scope on cuda: every configuration checked before timing, and timed.
try:
    rows = list(csv.DictReader(open(sweep_csv)))
except OSError as e:
    rows = []
    report(False, "sweep: %s" % e)
configs = {(r["variant"], r["tp"], r["kv_dtype"]) for r in rows}
for r in rows:
    tp = int(r["tp"])
    want = 2 * LAYERS if tp > 1 else 0
    report(r["validation"] == "pass" and r["scope"] == "model" and r["device"] == GPU and int(r["allreduce_count_per_step"]) == want,
           "sweep %s tp %s %s group %s: validation %s max err %s, step %s us, kernel %s us, all-reduces %s/step"
           % (r["variant"], r["tp"], r["kv_dtype"], r["tp_group"], r["validation"], r["validation_max_err"], r["step_us_median"],
              r["kernel_us_median"], r["allreduce_count_per_step"]))
report(len(configs) == 7 * 3 * 2, "sweep: %d of 42 configurations have rows" % len(configs))
print("model check: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
