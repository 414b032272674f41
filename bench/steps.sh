#!/usr/bin/env bash
# One training step of every tuning method on all-MiniLM-L6-v2, timed by phase with
# `orchestrate bench-step` (a full batch of 8 × 256 random tokens, 2 warm-up + 8 timed steps,
# the Trainer's defaults), in float32 and bfloat16; prints a markdown table with each step
# as a fraction of full fine-tuning's at the same precision (docs/performance.md).
#
#   bash bench/steps.sh [--batch 8] [--seq 256]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
cargo build --release -q
BIN=target/release/orchestrate
MODEL=models/all-MiniLM-L6-v2
METHODS=("full" "lora --set r=6 --set lora_alpha=12" "ia3" "bitfit" "qlora --set r=6 --set lora_alpha=12"
         "prompt_tuning" "prefix_tuning" "adapter" "head")
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for precision in fp32 bf16; do
  for i in "${!METHODS[@]}"; do
    # shellcheck disable=SC2086
    "$BIN" --json bench-step "$MODEL" --method ${METHODS[$i]} --precision "$precision" --warmup 2 --steps 8 "$@" \
      > "$OUT/$precision-$i.json"
  done
done
python3 - "$OUT" "${#METHODS[@]}" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
print("| precision | method | trainable | step ms | forward | backward | update | × full |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for precision in ["fp32", "bf16"]:
    full = None
    for i in range(n):
        v = json.load(open(f"{out}/{precision}-{i}.json"))
        p = v["profile"]
        step = p["forward_s"] + p["backward_s"] + p["update_s"]
        full = full or step
        ms = lambda s: f"{s * 1e3:.0f}"
        print(f"| {precision} | {v['method']} | {v['trainable']:,} | {ms(step)} | {ms(p['forward_s'])} | "
              f"{ms(p['backward_s'])} | {ms(p['update_s'])} | {step / full:.2f} |")
PY
