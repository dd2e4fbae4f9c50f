#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up, install the system tools the
# end-to-end tests drive (curl, tmux, redis-server, node, bwrap; Go and openai-node if they
# install), then run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

missing=()
for tool in curl tmux redis-server node sqlite3 bwrap; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    packages=("${missing[@]/node/nodejs}")
    packages=("${packages[@]/bwrap/bubblewrap}")
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing ${packages[*]}"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
        echo "error: the tests need ${packages[*]}; install them (e.g. sudo apt-get install ${packages[*]})" >&2
        exit 1
    fi
fi

# The Codex CLI for tests/oauth/test_codex_cli.py and test_codex_chatgpt.py: about 400 MB from the
# npm registry, into .cache/codex (ignored by git), once. Bounded in time; without it those are skipped.
codex_version=0.169.0
codex_dir=.cache/codex
if [ ! -x "$codex_dir/node_modules/.bin/codex" ]; then
    if command -v npm >/dev/null && mkdir -p "$codex_dir" \
        && timeout 300 npm install --prefix "$codex_dir" --no-audit --no-fund --loglevel=error \
            "@openai/codex@$codex_version" >/dev/null 2>&1; then
        echo "installed the Codex CLI $codex_version into $codex_dir"
    else
        echo "warning: could not install the Codex CLI from npm; the Codex tests in tests/oauth are skipped" >&2
    fi
fi

# Go (tests/clients: net/http through the proxy, and refused when it goes direct) from Debian's
# golang-go, and openai-node from the npm registry into .cache/openai-node. Optional: without
# them their cases are skipped.
if ! command -v go >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq golang-go >/dev/null; then
        echo "installed Go $(go env GOVERSION)"
    else
        echo "warning: Go is not installed (apt-get install golang-go); its client cases are skipped" >&2
    fi
fi
openai_node_version=6.49.0  # the last major release for Node 20 (7.x needs Node 22)
openai_node_dir=.cache/openai-node
if [ ! -f "$openai_node_dir/node_modules/openai/package.json" ]; then
    if command -v npm >/dev/null && mkdir -p "$openai_node_dir" \
        && timeout 120 npm install --prefix "$openai_node_dir" --no-audit --no-fund --loglevel=error \
            "openai@$openai_node_version" >/dev/null 2>&1; then
        echo "installed openai-node $openai_node_version into $openai_node_dir"
    else
        echo "warning: could not install openai-node from npm; its client cases are skipped" >&2
    fi
fi

# Node 22 and 24 (tests/clients runs Node's fetch, https, openai-node and axios under 20, 22 and 24):
# the npm registry's node-linux-ARCH package is Node's own release binary (the `node` package's
# install script fetches the same package with npm); into .cache/nodeMAJOR. axios into .cache/axios.
# Optional: without them their cases are skipped.
case "$(uname -m)" in x86_64) node_arch=x64 ;; aarch64) node_arch=arm64 ;; *) node_arch="" ;; esac
for node_version in 22.23.5 24.22.3; do
    node_dir=.cache/node${node_version%%.*}
    if [ -n "$node_arch" ] && [ ! -x "$node_dir/node_modules/.bin/node" ]; then
        if command -v npm >/dev/null && mkdir -p "$node_dir" \
            && timeout 300 npm install --prefix "$node_dir" --no-audit --no-fund --loglevel=error \
                "node-linux-$node_arch@$node_version" >/dev/null 2>&1; then
            echo "installed Node $node_version into $node_dir"
        else
            echo "warning: could not install Node $node_version from npm; its client cases are skipped" >&2
        fi
    fi
done
axios_version=1.21.1
axios_dir=.cache/axios
if [ ! -f "$axios_dir/node_modules/axios/package.json" ]; then
    if command -v npm >/dev/null && mkdir -p "$axios_dir" \
        && timeout 120 npm install --prefix "$axios_dir" --no-audit --no-fund --loglevel=error \
            "axios@$axios_version" >/dev/null 2>&1; then
        echo "installed axios $axios_version into $axios_dir"
    else
        echo "warning: could not install axios from npm; its client cases are skipped" >&2
    fi
fi

# The habits before the tests: lint, format, the import layers (docs/architecture.md), the
# types of the policy and redaction packages (pyproject.toml's [tool.mypy]).
.venv/bin/ruff check firewall tests bench scripts
.venv/bin/ruff format --check --quiet firewall tests bench scripts
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
.venv/bin/mypy --no-error-summary

exec .venv/bin/python -m pytest "$@"
