#!/usr/bin/env bash
# Page faults per training step (full fine-tuning, bf16, 8 × 256 tokens on all-MiniLM-L6-v2)
# with orchestrate's allocator setting (keep_freed_memory) and with glibc's defaults (any
# MALLOC_* variable turns the setting off): the minor faults of a 10-step run minus those of
# a 2-step run, over 8, so model loading cancels out.
#
#   bash bench/page-faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cargo build --release -q
BIN=target/release/orchestrate
faults() { # steps [env...]
    local steps=$1; shift
    env "$@" /usr/bin/time -f %R "$BIN" bench-step models/all-MiniLM-L6-v2 --method full --precision bf16 \
        --warmup 2 --steps "$steps" 2>&1 >/dev/null | tail -n 1
}
for setting in "kept freed memory (default)|" "glibc defaults|MALLOC_ARENA_MAX=8"; do
    name=${setting%%|*}; extra=${setting#*|}
    # shellcheck disable=SC2086
    short=$(faults 2 $extra); long=$(faults 10 $extra)
    echo "$name: $(( (long - short) / 8 )) page faults per step"
done
