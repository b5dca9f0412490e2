"""Shared by the Python tests: where things are, the transformers references, error measures, cached models.

Run by ctest (label "python") with PYTHONPATH at the build's module folder and MMFP4_SHARED_DIR / MMFP4_CLI /
MMFP4_SOURCE_DIR set; by hand: PYTHONPATH=build-py/python /usr/bin/python3 -m unittest discover tests/python
"""

import functools
import json
import os
import struct

import numpy as np

import mmfp4

SOURCE_DIR = os.environ.get("MMFP4_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
SHARED_DIR = os.environ.get("MMFP4_SHARED_DIR", os.path.join(SOURCE_DIR, "..", "shared"))
BUNDLED = os.path.join(SOURCE_DIR, "models", "tiny-glm4-moe-lite-mmfp4")
QWEN = os.path.join(SHARED_DIR, "models", "tiny-qwen3-mmfp4")
GLM = os.path.join(SHARED_DIR, "models", "tiny-glm4-moe-lite-mmfp4-h64")

# Every folder with transformers references: the trained models and the random-weight parity fixtures.
REFERENCE_DIRS = [os.path.join(SHARED_DIR, "models", m) for m in
                  ("tiny-qwen3", "tiny-qwen3-mmfp4", "tiny-glm4-moe-lite", "tiny-glm4-moe-lite-mmfp4-h64")] + \
                 [os.path.join(SHARED_DIR, "fixtures", kind, m) for kind in ("parity", "parity-mmfp4")
                  for m in ("llama3", "qwen3-moe", "deepseek-v3", "glm4-moe-lite")]

# The tolerances below are the CPU backend's; MMFP4_TEST_DEVICE=cuda runs the same calls on the GPU.
DEVICE = os.environ.get("MMFP4_TEST_DEVICE", "cpu")

_DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U32": np.uint32}


def safetensors_header(path):
    """(header dict, offset of the data section)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def read_safetensors(path):
    header, base = safetensors_header(path)
    data = np.fromfile(path, dtype=np.uint8)
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        out[name] = data[base + begin:base + end].view(_DTYPES[t["dtype"]]).reshape(t["shape"])
    return out


def load_reference(folder):
    """The cases of reference/cases.json, each with its "logits" [len(input_ids), vocab] float32."""
    with open(os.path.join(folder, "reference", "cases.json")) as f:
        cases = json.load(f)["cases"]
    logits = read_safetensors(os.path.join(folder, "reference", "logits.safetensors"))
    for i, c in enumerate(cases):
        c["logits"] = logits[f"logits.{i}"]
    return cases


def max_row_rel_err(got, ref):
    """max |got - ref| / max |ref| over each row (position); the worst row's value (tests/model's measure)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float((np.abs(got - ref).max(axis=-1) / np.abs(ref).max(axis=-1)).max())


@functools.lru_cache(maxsize=None)
def model(path, **options):
    """One loaded model per folder and options for the whole test process (loading is cheap, but not free)."""
    options.setdefault("device", DEVICE)
    return mmfp4.load(path, **options)
