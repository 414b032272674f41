#!/usr/bin/env bash
# Fuzzes the experiment-file loader and the CSV loader (cargo-fuzz, libFuzzer):
#
#   fuzz/run.sh [RUNS]      RUNS executions per target (default 1000000)
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz uses nightly-only flags; on a stable
# toolchain RUSTC_BOOTSTRAP=1 unlocks them. `-s none`: the code is safe Rust and we hunt
# panics, hangs and runaway memory, which need no sanitizer (and run ~3x faster without);
# `-a` keeps debug assertions (integer overflow) on. The corpus starts from the committed
# minimized corpus (fuzz/corpus/<target>) plus the repository's experiment files, the TOML
# snippets of the tests and the CSV fixtures; afterwards `cargo fuzz cmin` shrinks it back.
# A crash is saved under fuzz/artifacts/<target>/ and must become a regression test in tests/.
set -euo pipefail
cd "$(dirname "$0")"
runs=${1:-1000000}
export RUSTC_BOOTSTRAP=1
# Expect ~25,000 exec/s for experiment_file and ~2,000 for csv: csv_core builds its DFA for
# every reader, and that code is instrumented too (1M runs: under a minute vs ~8 minutes).

seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds/experiment_file" "$seeds/csv" corpus/experiment_file corpus/csv
cp ../experiments/*.toml "$seeds/experiment_file/"
# Every raw string literal of the tests that looks like an experiment file.
awk -v out="$seeds/experiment_file/test" '
    /r#"/ { inside = 1; n++; sub(/.*r#"/, ""); }
    inside && /"#/ { sub(/"#.*/, ""); print > (out n ".toml"); inside = 0; next }
    inside { print > (out n ".toml") }
' ../tests/*.rs ../tests/support/*.rs
cp ../tests/fixtures/tiny/*.csv "$seeds/csv/"
head -n 20 ../data/imdb/train.csv > "$seeds/csv/imdb_head.csv"
printf 'index,review,label\n1,"good, really",pos\n2,bad,neg\n' > "$seeds/csv/mapped.csv"

for target in experiment_file csv; do
    cargo fuzz run -s none -a "$target" "corpus/$target" "$seeds/$target" -- \
        -runs="$runs" -max_len=4096 -timeout=10 -print_final_stats=1
    # Set cover over edges (no hit counts): a few hundred small files, not thousands.
    cargo fuzz cmin -s none -a "$target" "corpus/$target" -- -set_cover_merge=1 -use_counters=0
done
