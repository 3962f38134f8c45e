"""Halve an exported folder's size by storing large float32 weights as float16, computing in float32 as before.

    /usr/bin/python3 compact_onnx.py ../default

Each float32 initializer with at least MIN_ELEMENTS values becomes a float16 initializer followed by a Cast back to
float32 under the original name, so inputs, outputs and arithmetic stay float32 (onnxruntime folds the Casts once
when it loads the model). The rounding changes weights by at most 2^-11 relative, well below what the model's own
training noise is; it is what keeps models/default under its 25 MB budget.
"""

from __future__ import annotations

import glob
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 1024


def compact(path: str) -> tuple[int, int]:
    model = onnx.load(path)
    graph = model.graph
    before = os.path.getsize(path)
    kept, casts = [], []
    for initializer in graph.initializer:
        if initializer.data_type != TensorProto.FLOAT or int(np.prod(initializer.dims)) < MIN_ELEMENTS:
            kept.append(initializer)
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(initializer).astype(np.float16), initializer.name + "_fp16")
        kept.append(half)
        casts.append(helper.make_node("Cast", [half.name], [initializer.name], to=TensorProto.FLOAT,
                                      name=initializer.name + "_to_fp32"))
    if not casts:
        return before, before
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return before, os.path.getsize(path)


def main() -> None:
    folder = sys.argv[1] if len(sys.argv) > 1 else "../default"
    sizes = {}
    for path in sorted(glob.glob(os.path.join(folder, "*", "model.onnx"))):
        before, after = compact(path)
        sizes[os.path.relpath(path, folder)] = [round(before / 1e6, 2), round(after / 1e6, 2)]
    total_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
    print(json.dumps({"mb_before_after": sizes, "total_mb": round(total_bytes / 1e6, 2)}))


if __name__ == "__main__":
    main()
