"""The `none` preset: the dense model as loaded, the reference every retention is taken against."""
from __future__ import annotations

from compressors import Preset, handler, register_preset
from compressors.measure import linear_modules, sparsity, weight_bytes

register_preset(Preset("none", "none"))


@handler("none", kind="baseline", version="none-1")
def apply_none(model, preset, family):
    frac, _, total = sparsity(linear_modules(model))
    return {"changed": False, "backend": "none", "sparsity": round(frac, 6),
            "params_in_scope": total, "weight_bytes": weight_bytes(model), "bits": None,
            "quantized_modules": 0}
