"""Prune, then quantize, as one preset (the paper's combinations): 20% and 40% global magnitude
sparsity followed by torch dynamic int8 or bitsandbytes NF4.

    compress(model, "p40-nf4", family)

Both steps run through their own handlers, so each is measured and refused on its own terms; the
effect keeps both (``pruning`` and ``quantization``). The sparsity is measured after pruning:
both quantizers map an exact zero to an exact zero (int8 affine: the zero point; NF4: its code
table has 0), so the zeros survive quantization.
"""
from __future__ import annotations

from compressors import Preset, apply, get_preset, handler, register_preset
from compressors.backends import BNB

for pct in (20, 40):
    register_preset(Preset(f"p{pct}-dyn8", "prune-quantize", bits=8, default=False, per_call=True,
                           params={"prune": f"sparse-{pct}", "quantize": "int8-dyn"}))
    register_preset(Preset(f"p{pct}-nf4", "prune-quantize", bits=4, default=False, backend=BNB,
                           params={"prune": f"sparse-{pct}", "quantize": "nf4-single"}))


@handler("prune-quantize", kind=("pruning", "quantization"), version="prune-quantize-1", effect=("modules_pruned",))
def apply_prune_quantize(model, preset: Preset, family: str) -> dict:
    prune, quant = get_preset(preset.params["prune"]), get_preset(preset.params["quantize"])
    pruned = apply(model, prune, family)
    quantized = apply(model, quant, family)
    return {"changed": bool(pruned.get("changed") and quantized.get("changed")),
            "backend": f"{pruned['backend']}; {quantized['backend']}",
            "sparsity": pruned["sparsity"], "bits": quantized["bits"],
            "bits_per_weight": quantized.get("bits_per_weight"),
            "quantized_modules": quantized["quantized_modules"],
            "modules_pruned": pruned["modules_pruned"], "weight_bytes": quantized["weight_bytes"],
            "pruning": pruned, "quantization": quantized}
