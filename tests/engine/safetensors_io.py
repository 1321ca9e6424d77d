"""Minimal safetensors reading for tests (no numpy needed): tensors as flat Python lists."""
import array
import json
import struct

_CODES = {"F32": "f", "I32": "i", "I64": "q"}


def read(path):
    """Returns {name: (shape, flat list of values)} for the F32/I32/I64 tensors of a file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] not in _CODES:
            continue
        begin, end = entry["data_offsets"]
        values = array.array(_CODES[entry["dtype"]])
        values.frombytes(data[begin:end])
        out[name] = (entry["shape"], values.tolist())
    return out
