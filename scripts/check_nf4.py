#!/usr/bin/env python3
"""orchestrate's NF4 quantizer against bitsandbytes' `quantize_4bit` / `dequantize_4bit`
(CPU), on the weights in DIR/nf4.safetensors (written by the cargo test
nf4_quantizations_for_bitsandbytes), with and without double quantization:

- the packed 4-bit indices, the float32 block maxima, the mean offset, the second-level
  maxima and the dynamic map are bitsandbytes' exactly;
- the 8-bit indices of the block maxima (double quantization) are bitsandbytes' except where
  its CPU kernel's approximate binary search returns a farther code: each such index must
  be strictly nearer the value than bitsandbytes' (counted and printed);
- bitsandbytes' `dequantize_4bit` of our quantization state gives our dequantized weights.

    ORCHESTRATE_ROUNDTRIP_DIR=target/roundtrip cargo test --test model_roundtrip
    .venv-hf/bin/python scripts/check_nf4.py target/roundtrip/nf4
"""
import os
import sys

import torch
from safetensors.torch import load_file
import bitsandbytes.functional as F
from bitsandbytes.functional import QuantState


def exact(what, ours, theirs):
    ours, theirs = ours.reshape(-1), theirs.reshape(-1)
    if ours.shape != theirs.shape or not torch.equal(ours, theirs):
        differ = (ours != theirs).sum().item() if ours.shape == theirs.shape else "shape"
        raise SystemExit(f"{what}: differs from bitsandbytes' ({differ})")
    return f"{ours.numel()} identical"


def nearer_where_different(what, ours, theirs, scaled, code):
    ours, theirs = ours.reshape(-1).long(), theirs.reshape(-1).long()
    differ = (ours != theirs).nonzero().flatten()
    for i in differ.tolist():
        mine, bnb = (scaled[i] - code[ours[i]]).abs(), (scaled[i] - code[theirs[i]]).abs()
        if not mine < bnb:
            raise SystemExit(f"{what}[{i}]: our code {ours[i]} is not nearer {scaled[i]} than bitsandbytes' {theirs[i]}")
    return f"{ours.numel() - len(differ)} identical, {len(differ)} nearer than bitsandbytes' CPU kernel"


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    ours = load_file(os.path.join(sys.argv[1], "nf4.safetensors"))
    names = sorted({k.split(".")[0] for k in ours})
    for name in names:
        weight = ours[f"{name}.weight"]
        for double in (False, True):
            tag = f"{name}.{'double' if double else 'plain'}"
            packed, state = F.quantize_4bit(weight, blocksize=64, quant_type="nf4", compress_statistics=double)
            checks = [("packed", exact(f"{tag}.packed", ours[f"{tag}.packed"], packed))]
            if double:
                _, plain = F.quantize_4bit(weight, blocksize=64, quant_type="nf4", compress_statistics=False)
                nested = ours[f"{tag}.nested_absmax"]
                checks += [
                    ("offset", exact(f"{tag}.offset", ours[f"{tag}.offset"], state.offset.reshape(1))),
                    ("nested absmax", exact(f"{tag}.nested_absmax", nested, state.state2.absmax)),
                    ("dynamic map", exact(f"{tag}.nested_code", ours[f"{tag}.nested_code"], state.state2.code)),
                ]
                centred = plain.absmax - state.offset
                blocks = torch.arange(centred.numel()) // 256
                scaled = (centred / nested[blocks]).clamp(-1, 1)
                checks.append(("8-bit maxima", nearer_where_different(
                    f"{tag}.absmax", ours[f"{tag}.absmax"], state.absmax, scaled, state.state2.code)))
                mine = QuantState(
                    absmax=ours[f"{tag}.absmax"], shape=weight.shape, dtype=torch.float32, blocksize=64,
                    code=state.code, quant_type="nf4", offset=ours[f"{tag}.offset"][0],
                    state2=QuantState(absmax=nested, code=ours[f"{tag}.nested_code"], blocksize=256, dtype=torch.float32),
                )
            else:
                checks.append(("absmax", exact(f"{tag}.absmax", ours[f"{tag}.absmax"], state.absmax)))
                mine = QuantState(absmax=ours[f"{tag}.absmax"], shape=weight.shape, dtype=torch.float32,
                                  blocksize=64, code=state.code, quant_type="nf4")
            back = F.dequantize_4bit(ours[f"{tag}.packed"], mine)
            diff = (back - ours[f"{tag}.dequantized"]).abs().max().item()
            if diff > 1e-7:
                raise SystemExit(f"{tag}: bitsandbytes dequantizes our state to values {diff} from ours")
            checks.append(("dequantized by bitsandbytes", f"max abs diff {diff:.1e}"))
            print(f"{tag} {tuple(weight.shape)}: " + "; ".join(f"{k}: {v}" for k, v in checks))
    print(f"nf4 ok: {len(names)} weights, plain and double-quantized, checked against bitsandbytes")


if __name__ == "__main__":
    main()
