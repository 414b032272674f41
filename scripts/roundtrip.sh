#!/usr/bin/env bash
# Round trip: orchestrate saves tiny checkpoints, transformers loads them and must give
# the same logits, and PEFT loads the saved adapters; the NF4 quantizer matches bitsandbytes'. Then training parity: orchestrate's
# finetune and transformers' Trainer train the same tiny BERT to the same weights.
# Needs .venv-hf (full torch, transformers, safetensors, peft), which scripts/setup-hf.sh
# installs with the pinned versions.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${HF_PYTHON:-$ROOT/.venv-hf/bin/python}"
OUT="$ROOT/target/roundtrip"
rm -rf "$OUT"
mkdir -p "$OUT"
ORCHESTRATE_ROUNDTRIP_DIR="$OUT" cargo test --quiet --test model_roundtrip
"$PY" scripts/check_roundtrip.py "$OUT"
"$PY" scripts/check_nf4.py "$OUT/nf4"
cargo build --quiet
"$PY" scripts/check_training.py target/debug/orchestrate "$ROOT/target/parity"
