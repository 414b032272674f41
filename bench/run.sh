#!/usr/bin/env bash
# The speed benchmark of issue 8: orchestrate vs Hugging Face (transformers + peft, the seed
# recipe and HF's best practice) vs scikit-learn, same model (all-MiniLM-L6-v2), data and
# hyperparameters, in one go; prints one markdown table (docs/performance.md).
#
#   bash bench/run.sh      # default: full/LoRA 128 train reviews, 1 epoch; head-tuning 32, 3 epochs;
#                          # 64 eval reviews (TF-IDF: the whole sample); max_len 512 and 256
#   bash bench/run.sh --train-n 0 --eval-n 0 --epochs 1 --max-len 256 --methods full,lora   # accuracy, whole sample
#   bash bench/run.sh --methods full --max-len 256 --tools a,c
#
# Installs into bench/.venv-bench from PyPI the first time (torch 2.11.0 — the same wheel
# whose libtorch orchestrate links —, transformers, peft, datasets, accelerate, scikit-learn).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=bench/.venv-bench
PINS=(torch==2.11.0 transformers==5.23.0 peft==0.21.2 datasets==5.2.0 accelerate==1.15.0
      scikit-learn==1.9.1 pandas==2.3.3 psutil==7.2.2)
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" - "${PINS[@]}" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit(any(version(p.split("==")[0]) != p.split("==")[1] for p in sys.argv[1:]))
except PackageNotFoundError:
    sys.exit(1)
PY
then
  echo "bench: installing ${PINS[*]} into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
fi
bash scripts/setup.sh >/dev/null
cargo build --release -q
exec "$VENV/bin/python" bench/bench.py "$@"
