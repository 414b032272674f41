#!/usr/bin/env bash
# orchestrate vs scikit-learn on the TF-IDF baselines, same CSVs, one run.
# Installs scikit-learn into bench/.venv-sklearn (PyPI) the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x bench/.venv-sklearn/bin/python ]; then
  python3 -m venv bench/.venv-sklearn
  bench/.venv-sklearn/bin/pip install -q scikit-learn==1.9.1 pandas==2.3.3
fi
cargo build --release -q
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
./target/release/orchestrate --json --cache-dir "$cache" --reports-dir "$cache/reports" run experiments/baselines.toml > "$cache/events.jsonl"
bench/.venv-sklearn/bin/python bench/sklearn_baselines.py "$cache/events.jsonl"
