#!/usr/bin/env bash
# Headless-browser check of the HTML report (issue 9): renders the reports of
#  1. a real fixture experiment on tests/fixtures/tiny (seeds.toml: naive Bayes over 10 alphas,
#     the dataset's sample_seed over 5 seeds → mean ± std), built by `orchestrate run`;
#  2. the synthetic lab of tests/report_html.rs (rank sweep, reference levels, epochs),
# loads each in Debian's chromium (installed with apt when missing) and asserts: no console
# errors, every plot's <svg> has non-empty <path d=…>/<polyline points=…>, and a screenshot.
# Screenshots: target/report-fixtures/*.png (override with REPORT_SCREENSHOTS=dir).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT="${REPORT_SCREENSHOTS:-$ROOT/target/report-fixtures}"
mkdir -p "$OUT"

if ! command -v chromium >/dev/null; then
    echo "browser check: installing chromium with apt"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

cargo build --locked --quiet
cargo test --locked --quiet --test report_html >/dev/null  # writes target/tmp/report-fixtures/
BIN="$ROOT/target/debug/orchestrate"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cp tests/fixtures/tiny/train.csv tests/fixtures/tiny/eval.csv tests/fixtures/tiny/seeds.toml "$WORK/"
(cd "$WORK" && "$BIN" --quiet run seeds.toml >/dev/null)
grep -q "±" "$WORK/reports/tiny-seeds.md" || { echo "browser check: no mean ± std in tiny-seeds.md" >&2; exit 1; }

check_page() { # html name
    local html="$1" name="$2" profile log dom
    profile="$(mktemp -d)"
    log="$WORK/$name.log"
    dom="$WORK/$name.dom.html"
    local flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
        --disable-background-networking --disable-component-update --disable-sync
        --user-data-dir="$profile" --enable-logging=stderr --v=0 --window-size=1280,3400)
    chromium "${flags[@]}" --dump-dom "file://$html" >"$dom" 2>"$log"
    chromium "${flags[@]}" --screenshot="$OUT/$name.png" "file://$html" >/dev/null 2>>"$log"
    rm -rf "$profile"
    if grep -E "Uncaught|ERROR:CONSOLE|console.error" "$log"; then
        echo "browser check: console errors in $name" >&2
        exit 1
    fi
    [ -s "$OUT/$name.png" ] || { echo "browser check: no screenshot for $name" >&2; exit 1; }
    python3 - "$dom" "$name" <<'PY'
import re, sys
dom, name = open(sys.argv[1]).read(), sys.argv[2]
figures = re.findall(r'<figure id="(plot-[^"]+)">(.*?)</figure>', dom, re.S)
assert figures, f"{name}: no plots in the rendered page"
for ident, body in figures:
    assert "<svg" in body, f"{name}: {ident} has no <svg>"
    drawn = re.findall(r'<path[^>]* d="[^"]+"|<polyline[^>]* points="[^"]+"|<rect[^>]* width="[1-9]', body)
    assert drawn, f"{name}: {ident} draws nothing"
print(f"browser check: {name}: {len(figures)} plots rendered: " + ", ".join(i for i, _ in figures))
PY
}

check_page "$WORK/reports/tiny-seeds.html" tiny-seeds
check_page "$ROOT/target/tmp/report-fixtures/synthetic.html" synthetic
echo "browser check: screenshots in $OUT"
