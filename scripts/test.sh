#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need, idempotently,
# then runs them all.
#  1. libtorch + all-MiniLM-L6-v2 (scripts/setup.sh)
#  2. a throwaway one-node Slurm cluster on loopback for tests/slurm.rs, stopped on exit
#  3. .venv-hf (scripts/setup-hf.sh: transformers, peft, huggingface_hub) and .venv-adapters
#     (scripts/setup-adapters.sh: the AdapterHub adapters library on its transformers 4.x)
#  4. cargo test (tests/hub.rs uses .venv-hf's huggingface_hub against the mock hub)
#  5. the round trip through Hugging Face transformers, PEFT and adapters (roundtrip.sh)
#  6. the HTML report in headless chromium (tests/browser/check.sh; apt-installs chromium)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh
bash tests/slurm/start.sh
trap 'bash tests/slurm/stop.sh' EXIT
# shellcheck disable=SC1091
source target/slurm-ws/slurm.env
# Before the tests: tests/hub.rs shares a Hugging Face cache with its huggingface_hub.
bash scripts/setup-hf.sh
bash scripts/setup-adapters.sh
# A test whose resource is missing fails here instead of skipping (tests/support/resources.rs):
# Slurm from step 2, the model from step 1, .venv-hf from step 3, and a tmpfs, which CI can
# mount as it runs as root.
ORCHESTRATE_REQUIRE_SLURM=1 ORCHESTRATE_REQUIRE_MINILM=1 ORCHESTRATE_REQUIRE_TMPFS=1 ORCHESTRATE_REQUIRE_HF=1 \
    cargo test --locked
bash scripts/roundtrip.sh
bash tests/browser/check.sh
