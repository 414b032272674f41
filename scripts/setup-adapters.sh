#!/usr/bin/env bash
# Idempotent: .venv-adapters with the AdapterHub `adapters` library and the transformers 4.x
# it pins (adapters 1.3.0 requires transformers ~= 4.57.6, so it cannot share .venv-hf's
# transformers 5), for scripts/check_adapters.py: the library loads the bottleneck adapters
# that orchestrate's `adapter` kind saves and must reproduce their logits and trainable count.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-adapters"
PINS=(torch==2.11.0 transformers==4.57.6 safetensors==0.8.0 adapters==1.3.0)
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit(any(version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
except PackageNotFoundError:
    sys.exit(1)
PY
then
  echo "setup-adapters: $VENV ready"
  exit 0
fi
echo "setup-adapters: installing ${PINS[*]} into $VENV (~2.6 GB)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
