#!/usr/bin/env bash
# Set up a development environment on a fresh machine: find Python >= 3.12,
# create .venv, install agent-firewall (editable) with its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

python_ok() { "$@" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }

find_python() {
    for candidate in python3.13 python3.12 python3; do
        if command -v "$candidate" >/dev/null && python_ok "$candidate"; then
            echo "$candidate"; return 0
        fi
    done
    if command -v pyenv >/dev/null; then
        for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9]|[2-9][0-9])' | sort -rV); do
            if PYENV_VERSION="$version" python_ok python3; then
                echo "env PYENV_VERSION=$version python3"; return 0
            fi
        done
    fi
    return 1
}

if [ ! -x .venv/bin/python ] || ! python_ok .venv/bin/python; then
    PYTHON=$(find_python) || { echo "error: agent-firewall needs Python 3.12 or newer; none was found" >&2; exit 1; }
    echo "creating .venv with $($PYTHON --version)"
    rm -rf .venv
    $PYTHON -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# An editable install leaves byte code to the first import, and none is written where
# PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines): every firewall process
# would compile ~100 modules again (0.6 s and more of start-up). Compile them now, as a wheel
# install does; a changed file is recompiled by Python as before.
.venv/bin/python -m compileall -q -j 0 firewall >/dev/null
# `firewall run` seals agents in with bubblewrap (docs/proxy.md); without it, runs fail closed.
if ! command -v bwrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing bubblewrap (firewall run isolates agents with it)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
    else
        echo "warning: firewall run isolates agents with bubblewrap, which is not installed:" \
             "sudo apt-get install bubblewrap (or run agents with --no-isolate)" >&2
    fi
fi
echo "ready: .venv/bin/firewall"
