#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, install the system tools the
# end-to-end tests drive (curl, tmux, redis-server, node), then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

missing=()
for tool in curl tmux redis-server node sqlite3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    packages=("${missing[@]/node/nodejs}")
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${packages[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "error: the tests need ${packages[*]}; install them (e.g. sudo apt-get install ${packages[*]})" >&2
        exit 1
    fi
fi
exec .venv/bin/python -m pytest "$@"
