# Source me: sets LIBTORCH to the project's minimal torch venv (scripts/setup.sh).
# Cargo already gets it from .cargo/config.toml; this is for other tools and shells.
_orchestrate_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export LIBTORCH="$_orchestrate_root/.venv-torch/lib/python3.11/site-packages/torch"
if [ ! -f "$LIBTORCH/lib/libtorch_cpu.so" ]; then
    echo "env.sh: $LIBTORCH has no libtorch; run scripts/setup.sh first" >&2
fi
unset _orchestrate_root
