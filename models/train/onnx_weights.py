"""Read PyTorch state dicts back out of the ONNX graphs export.py wrote, so a fresh clone can fine-tune or compare
against the shipped networks without any PyTorch checkpoint.

Named initializers carry their module path ("vae.encoder.0.weight"); the exporter turns each GroupNorm into
InstanceNormalization → Mul → Add with anonymous constants, so those are recovered from the node names
("/encoder/encoder.1/norm1/Mul"), and float16-stored weights (export.store_weights_as_float16) from their Cast.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
import torch
from onnx import numpy_helper


def state_dict_from_onnx(path: str, strip_prefix: str) -> dict[str, torch.Tensor]:
    model = onnx.load(path)
    graph = model.graph
    arrays = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    # float16 storage: "<name>_fp16" initializer → Cast → "<name>".
    for node in graph.node:
        if node.op_type == "Cast" and node.input[0] in arrays and node.output[0] not in arrays:
            arrays[node.output[0]] = arrays[node.input[0]].astype(np.float32)
    state: dict[str, torch.Tensor] = {}
    for name, array in arrays.items():
        if name.startswith(strip_prefix):
            state[name[len(strip_prefix):]] = torch.from_numpy(np.array(array, dtype=np.float32))
    for node in graph.node:
        match = re.fullmatch(r"/[^/]+/(.+)/(Mul|Add)", node.name)
        if not match or node.op_type not in ("Mul", "Add") or node.input[1] not in arrays:
            continue
        if not node.input[1].startswith("onnx::"):
            continue
        module = match.group(1).replace("/", ".")
        parameter = "weight" if node.op_type == "Mul" else "bias"
        state[f"{module}.{parameter}"] = torch.from_numpy(np.array(arrays[node.input[1]], dtype=np.float32)).reshape(-1)
    return state
