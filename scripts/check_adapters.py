#!/usr/bin/env python3
"""Round trip, AdapterHub side: every folder under DIR/bottleneck/ that orchestrate saved
(tests/model_roundtrip.rs, bottleneck_roundtrip) holds a base model (`base/`), a bottleneck
adapter in the `adapters` library's save_adapter layout (`adapter/`), the Rust logits
(rust_outputs.safetensors) and the Rust trainable count (trainable.json). The library must
load the adapter and its head onto the base, with every saved tensor used, and give the
Rust logits within 1e-5; `train_adapter` (plus the trained encoder modules in
modules_to_save.safetensors, BERT's pooler) must train exactly as many parameters.

    ORCHESTRATE_ROUNDTRIP_DIR=target/roundtrip cargo test --test model_roundtrip
    .venv-adapters/bin/python scripts/check_adapters.py target/roundtrip

Needs .venv-adapters (scripts/setup-adapters.sh: adapters 1.3.0, transformers 4.57.6).
"""
import json
import os
import sys

import adapters
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

TOL = 1e-5


def check(folder):
    rust = load_file(os.path.join(folder, "rust_outputs.safetensors"))
    expected = json.load(open(os.path.join(folder, "trainable.json")))
    adapter_dir = os.path.join(folder, "adapter")
    model = AutoModelForSequenceClassification.from_pretrained(os.path.join(folder, "base"))
    adapters.init(model)
    name = model.load_adapter(adapter_dir, use_safetensors=True, set_active=True)
    state = model.state_dict()
    # Every saved tensor must have gone somewhere, unchanged.
    saved = load_file(os.path.join(adapter_dir, "adapter.safetensors"))
    head = os.path.join(adapter_dir, "model_head.safetensors")
    if os.path.isfile(head):
        saved.update(load_file(head))
    for key, tensor in saved.items():
        if key not in state or not torch.equal(state[key], tensor):
            raise SystemExit(f"{folder}: {key} was not loaded by the library")
    extra = os.path.join(adapter_dir, "modules_to_save.safetensors")
    extra_keys = []
    if os.path.isfile(extra):
        modules = load_file(extra)
        result = model.load_state_dict(modules, strict=False)
        if result.unexpected_keys:
            raise SystemExit(f"{folder}: modules_to_save.safetensors has unknown keys {result.unexpected_keys}")
        extra_keys = list(modules)
    model.train_adapter(name)
    params = dict(model.named_parameters())
    for key in extra_keys:
        params[key].requires_grad_(True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    if (trainable, total) != (expected["trainable"], expected["all"]):
        raise SystemExit(
            f"{folder}: the library trains {trainable:,} of {total:,}, orchestrate "
            f"{expected['trainable']:,} of {expected['all']:,}"
        )
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=rust["input_ids"], attention_mask=rust["attention_mask"]).logits
    diff = (logits - rust["logits"]).abs().max().item()
    config = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))["config"]
    print(
        f"{folder}: adapters {adapters.__version__} {type(model).__name__}, "
        f"mh_adapter={config['mh_adapter']} non_linearity={config['non_linearity']} "
        f"reduction_factor={config['reduction_factor']}, {trainable:,} trainable of {total:,}, "
        f"logits max abs diff {diff:.3e}"
    )
    if diff > TOL:
        raise SystemExit(f"{folder}: logits differ by {diff} > {TOL}")
    # The adapter must matter: without it the logits move.
    model.set_active_adapters(None)
    with torch.no_grad():
        bare = model(input_ids=rust["input_ids"], attention_mask=rust["attention_mask"]).logits
    moved = (bare - rust["logits"]).abs().max().item()
    if moved < 1e-4:
        raise SystemExit(f"{folder}: the adapter changes the logits by only {moved}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = os.path.join(sys.argv[1], "bottleneck")
    folders = sorted(
        os.path.join(root, d)
        for d in (os.listdir(root) if os.path.isdir(root) else [])
        if os.path.isfile(os.path.join(root, d, "rust_outputs.safetensors"))
    )
    if not folders:
        raise SystemExit(f"{root}: no saved adapters (run the cargo test first)")
    for f in folders:
        check(f)
    print(f"adapters round trip ok: {len(folders)} adapter(s)")


if __name__ == "__main__":
    main()
