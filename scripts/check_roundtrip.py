#!/usr/bin/env python3
"""Round trip, transformers side: every folder under DIR that orchestrate saved (with the
Rust logits in rust_outputs.safetensors) must load in transformers with no missing or
unexpected weights and give the same logits (max abs diff <= 1e-4).

    ORCHESTRATE_ROUNDTRIP_DIR=target/roundtrip cargo test --test model_roundtrip
    .venv-hf/bin/python scripts/check_roundtrip.py target/roundtrip

A folder with `adapter/` holds a PEFT adapter (LoRA, IA3, QLoRA, prompt and prefix tuning) and its `base/` model: PEFT's
PeftModel.from_pretrained must reproduce the Rust logits, and `merged/` (LoRA merged into
the weights) must too, in plain transformers.

(scripts/roundtrip.sh runs both.) Needs torch==2.11.0, transformers, peft, safetensors.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

TOL = 1e-5
# PEFT adapters, float32 both sides (issue 17: within 1e-5).
ADAPTER_TOL = 1e-5


def compare(folder, what, model, rust, tol=TOL):
    """Runs `model` on the Rust inputs; fails unless its logits match the Rust ones."""
    with torch.no_grad():
        logits = model(input_ids=rust["input_ids"], attention_mask=rust["attention_mask"]).logits
    diff = (logits - rust["logits"]).abs().max().item()
    print(f"{folder}: {what}, logits {tuple(logits.shape)}, max abs diff {diff:.3e}")
    if diff > tol:
        raise SystemExit(f"{folder}: {what}: logits differ by {diff} > {tol}")


def check_adapter(folder):
    """An adapter folder: PEFT loads `adapter/` onto `base/` and must give the Rust logits."""
    from peft import PeftModel

    rust = load_file(os.path.join(folder, "rust_outputs.safetensors"))
    base = AutoModelForSequenceClassification.from_pretrained(os.path.join(folder, "base"))
    # The adapter must matter: the base alone gives other logits (else a PEFT that ignored
    # it would pass).
    with torch.no_grad():
        alone = base.eval()(input_ids=rust["input_ids"], attention_mask=rust["attention_mask"]).logits
    effect = (alone - rust["logits"]).abs().max().item()
    if effect < 1e-3:
        raise SystemExit(f"{folder}: the adapter changes the logits by only {effect}")
    from peft import PeftConfig, get_peft_model

    config = PeftConfig.from_pretrained(os.path.join(folder, "adapter"))
    if config.is_prompt_learning:
        # PEFT loads prompt learning adapters for inference only: count what the same config
        # trains on a fresh copy of the base model instead.
        config.inference_mode = False
        fresh = AutoModelForSequenceClassification.from_pretrained(os.path.join(folder, "base"))
        trainable, _ = get_peft_model(fresh, config).get_nb_trainable_parameters()
        model = PeftModel.from_pretrained(base, os.path.join(folder, "adapter"))
    else:
        model = PeftModel.from_pretrained(base, os.path.join(folder, "adapter"), is_trainable=True)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    model.eval()
    # PEFT trains exactly as many parameters as orchestrate did (a projected prefix saves
    # the MLP's output instead of the MLP, so the saved count can differ).
    with open(os.path.join(folder, "trainable.json")) as f:
        ours = json.load(f)["trainable"]
    if trainable != ours:
        raise SystemExit(f"{folder}: PEFT trains {trainable} parameters, orchestrate {ours}")
    kind = model.peft_config["default"].peft_type
    compare(folder, f"PEFT {kind} on {type(base).__name__}, {trainable:,} trainable", model, rust, ADAPTER_TOL)
    if os.path.isdir(os.path.join(folder, "merged")):
        merged = AutoModelForSequenceClassification.from_pretrained(os.path.join(folder, "merged")).eval()
        compare(folder, "merged checkpoint in transformers", merged, rust)


def check(folder):
    if os.path.isdir(os.path.join(folder, "adapter")):
        return check_adapter(folder)
    rust = load_file(os.path.join(folder, "rust_outputs.safetensors"))
    model, info = AutoModelForSequenceClassification.from_pretrained(folder, output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v}
    if bad:
        raise SystemExit(f"{folder}: transformers reports {bad}")
    tok = AutoTokenizer.from_pretrained(folder)
    texts = ["the movie was great", "this film was really boring and the plot was bad", "loved it"]
    enc = tok(texts, padding=True, return_tensors="pt")
    if not torch.equal(enc["input_ids"], rust["input_ids"]):
        raise SystemExit(f"{folder}: tokenizer ids differ:\n{enc['input_ids']}\n{rust['input_ids']}")
    compare(folder, type(model).__name__, model, rust)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = sys.argv[1]
    folders = sorted(os.path.join(root, d) for d in os.listdir(root)
                     if os.path.isfile(os.path.join(root, d, "rust_outputs.safetensors")))
    if not folders:
        raise SystemExit(f"{root}: no saved models (run the cargo test first)")
    for f in folders:
        check(f)
    print(f"round trip ok: {len(folders)} model(s) and adapter(s)")


if __name__ == "__main__":
    main()
