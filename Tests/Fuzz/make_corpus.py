#!/usr/bin/env python3
"""Writes the fuzzing seed corpus (Tests/Fuzz/corpus). The files are committed;
rerun only to regenerate them. Plain stdlib: struct + json, deterministic."""
import json, os, struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def f16(x): return struct.pack("<e", x)
def bf16(x): return struct.pack("<I", struct.unpack("<I", struct.pack("<f", x))[0])[2:]
def f32(x): return struct.pack("<f", x)
PACK = {"F32": (f32, 4), "F16": (f16, 2), "BF16": (bf16, 2)}

def safetensors(name, tensors, metadata=None):
    header, data = {}, b""
    for tname, dtype, shape in tensors:
        n = 1
        for d in shape: n *= d
        pack, size = PACK[dtype]
        blob = b"".join(pack(0.25 * ((k % 7) - 3)) for k in range(n))
        header[tname] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    if metadata: header["__metadata__"] = metadata
    js = json.dumps(header, sort_keys=True).encode()
    js += b" " * (-len(js) % 8)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(struct.pack("<Q", len(js)) + js + data)

def text(name, obj):
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(obj, f, indent=1); f.write("\n")

os.makedirs(HERE, exist_ok=True)
safetensors("f32-x.safetensors", [("x", "F32", [3, 4])])
safetensors("f16-multi.safetensors", [("a.weight", "F16", [2, 3]), ("b", "F16", [5]), ("empty", "F16", [0, 4])],
            metadata={"format": "pt", "note": "seed"})
safetensors("bf16-meta.safetensors", [("kv_b_proj", "BF16", [2, 2, 3]), ("scalar", "BF16", []), ("n.weight", "BF16", [4])],
            metadata={"producer": "make_corpus.py"})
safetensors("mixed.safetensors", [("w32", "F32", [2, 2]), ("w16", "F16", [3]), ("wb", "BF16", [1, 1, 2]), ("z", "F32", [0])])
text("config-mlra4.json", {"variant": "mlra4", "n_embd": 32, "n_head": 3, "q_lora_rank": 16, "kv_lora_rank": 32,
                           "qk_nope_head_dim": 12, "qk_rope_head_dim": 8})
text("config-gla2.json", {"variant": "gla2", "n_embd": 64, "n_head": 4, "q_lora_rank": 16, "kv_lora_rank": 32,
                          "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "n_layer": 2, "intermediate_size": 96, "vocab_size": 50})
text("config-gqa.json", {"variant": "gqa", "n_embd": 48, "n_head": 6, "head_dim": 8, "group_size": 3})
text("config-mqa.json", {"variant": "mqa", "n_embd": 32, "n_head": 4, "head_dim": 8})
text("spec-small.json", {"defaults": {"head_dim": 16, "rope_dim": 8, "warmup": 1, "steps": 3, "q_lora_rank": 32, "n_embd": 64},
                         "grids": [{"variants": ["mla", "mlra4", "gqa"], "tp": [1, 2, 4], "contexts": [256, 512], "kv_ranks": [64],
                                    "heads": [4], "dtypes": ["bf16"], "batch": [4], "scopes": ["kernel", "layer"], "threads": [1]}]})
text("spec-two-grids.json", {"defaults": {"warmup": 0, "steps": 2, "cold_cache": False, "kv_heads": 2},
                             "grids": [{"variants": ["gqa", "mha"], "tp": [2], "heads": [8], "dtypes": ["f16", "f32"], "contexts": [64]},
                                       {"variants": ["mlra2", "gla2"], "tp": [4], "scopes": ["model"], "n_layer": 2,
                                        "vocab_size": 100, "intermediate_size": 64, "contexts": [128]}]})
text("spec-minimal.json", {"defaults": {}, "grids": [{}]})
