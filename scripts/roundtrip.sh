#!/usr/bin/env bash
# Round trip: orchestrate saves tiny checkpoints, transformers loads them and must give
# the same logits, and PEFT loads the saved adapters; the NF4 quantizer matches bitsandbytes'; the
# AdapterHub adapters library loads the saved bottleneck adapters. Then training parity: orchestrate's
# finetune and transformers' Trainer train the same tiny BERT to the same weights.
# Needs .venv-hf (full torch, transformers, safetensors, peft), which scripts/setup-hf.sh
# installs with the pinned versions, and .venv-adapters (adapters 1.3.0 with the transformers
# 4.57.6 it requires), which scripts/setup-adapters.sh installs; a missing one fails the check.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${HF_PYTHON:-$ROOT/.venv-hf/bin/python}"
ADAPTERS_PY="${ADAPTERS_PYTHON:-$ROOT/.venv-adapters/bin/python}"
OUT="$ROOT/target/roundtrip"
rm -rf "$OUT"
mkdir -p "$OUT"
ORCHESTRATE_ROUNDTRIP_DIR="$OUT" cargo test --quiet --test model_roundtrip
"$PY" scripts/check_roundtrip.py "$OUT"
"$ADAPTERS_PY" scripts/check_adapters.py "$OUT"
"$PY" scripts/check_nf4.py "$OUT/nf4"
cargo build --quiet
"$PY" scripts/check_training.py target/debug/orchestrate "$ROOT/target/parity"
