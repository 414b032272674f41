#!/usr/bin/env bash
# Round trip: orchestrate saves tiny checkpoints, transformers loads them and must give
# the same logits. Needs .venv-hf (full torch==2.11.0 + transformers + safetensors):
#   python3 -m venv .venv-hf && .venv-hf/bin/pip install torch==2.11.0 transformers safetensors
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${HF_PYTHON:-$ROOT/.venv-hf/bin/python}"
OUT="$ROOT/target/roundtrip"
rm -rf "$OUT"
mkdir -p "$OUT"
ORCHESTRATE_ROUNDTRIP_DIR="$OUT" cargo test --quiet --test model_roundtrip
"$PY" scripts/check_roundtrip.py "$OUT"
