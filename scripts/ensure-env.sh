#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment from PyPI, and the one system
# package that PyPI does not have. Sourced by the other scripts; safe to run repeatedly.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PLASTICORE_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.plasticore-installed"
want="$(cat "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
    echo "plasticore: creating $venv" >&2
    "$python" -m venv "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "plasticore: installing plasticore and its dependencies into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$root[test,learning,board,toolchain,engine,nir,snntorch]"
    echo "$want" > "$stamp"
fi

# Icarus Verilog is the second RTL simulator; it is not on PyPI, Debian has it.
if ! command -v iverilog >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "plasticore: installing iverilog (Debian package)" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq iverilog >/dev/null
    else
        echo "plasticore: iverilog not found; the Icarus cross-check will be skipped" >&2
    fi
fi

export PATH="$venv/bin:$PATH"
