#!/usr/bin/env bash
# Idempotent: .venv-hf with the full PyPI torch 2.11.0 + transformers + peft (+ bitsandbytes,
# whose CPU quantize_4bit scripts/check_nf4.py compares against), for the checks
# that run Hugging Face's own code (scripts/roundtrip.sh, scripts/make_model_fixtures.py,
# tests/hub.rs: transformers brings huggingface_hub, whose cache orchestrate shares).
# Separate from .venv-torch, which tch links against and which cannot `import torch`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-hf"
PINS=(torch==2.11.0 transformers==5.23.0 safetensors==0.8.0 peft==0.21.2 bitsandbytes==0.50.2)
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
PY
then
  echo "setup-hf: $VENV ready"
  exit 0
fi
echo "setup-hf: installing ${PINS[*]} into $VENV (~2.6 GB)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
