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

# The npm packages the client and Codex tests drive, each into its folder of .cache/ (ignored by
# git), once: `npm_cache DIR CHECK FILE SECONDS PACKAGE@VERSION NAME SKIPPED` installs it within
# SECONDS unless `[ CHECK DIR/FILE ]` finds it there (so a re-run offline changes nothing).
# Optional: one it cannot install gets a warning that ends with SKIPPED (what is skipped without it).
npm_cache() {
    local dir=$1 check=$2 file=$3 seconds=$4 spec=$5 name=$6 skipped=$7
    [ "$check" "$dir/$file" ] && return 0
    if command -v npm >/dev/null && mkdir -p "$dir" \
        && timeout "$seconds" npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
            "$spec" >/dev/null 2>&1; then
        echo "installed $name into $dir"
    else
        echo "warning: could not install $name from npm; $skipped" >&2
    fi
}

# The Codex CLI for tests/oauth/test_codex_cli.py and test_codex_chatgpt.py: about 400 MB.
codex_version=0.169.0
npm_cache .cache/codex -x node_modules/.bin/codex 300 "@openai/codex@$codex_version" \
    "the Codex CLI $codex_version" "the Codex tests in tests/oauth are skipped"

# Go (tests/clients: net/http through the proxy, and refused when it goes direct) from Debian's
# golang-go, and openai-node from the npm registry. Optional: without them their cases are skipped.
if ! command -v go >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq >/dev/null \
        && DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -qq golang-go >/dev/null; then
        echo "installed Go $(go env GOVERSION)"
    else
        echo "warning: Go is not installed (apt-get install golang-go); its client cases are skipped" >&2
    fi
fi
openai_node_version=6.49.0  # the last major release for Node 20 (7.x needs Node 22)
npm_cache .cache/openai-node -f node_modules/openai/package.json 120 "openai@$openai_node_version" \
    "openai-node $openai_node_version" "its client cases are skipped"

# Node 22 and 24 (tests/clients runs Node's fetch, https, openai-node and axios under 20, 22 and 24):
# the npm registry's node-linux-ARCH package is Node's own release binary (the `node` package's
# install script fetches the same package with npm); into .cache/nodeMAJOR. axios into .cache/axios.
case "$(uname -m)" in x86_64) node_arch=x64 ;; aarch64) node_arch=arm64 ;; *) node_arch="" ;; esac
if [ -n "$node_arch" ]; then
    for node_version in 22.23.5 24.22.3; do
        npm_cache ".cache/node${node_version%%.*}" -x node_modules/.bin/node 300 \
            "node-linux-$node_arch@$node_version" "Node $node_version" "its client cases are skipped"
    done
fi
axios_version=1.21.1
npm_cache .cache/axios -f node_modules/axios/package.json 120 "axios@$axios_version" \
    "axios $axios_version" "its client cases are skipped"

# The habits before the tests: lint, format, the import layers (docs/architecture.md), the
# types of the policy and redaction packages (pyproject.toml's [tool.mypy]).
.venv/bin/ruff check firewall tests bench scripts
.venv/bin/ruff format --check --quiet firewall tests bench scripts
.venv/bin/lint-imports --no-cache >/dev/null || .venv/bin/lint-imports --no-cache
.venv/bin/mypy --no-error-summary

exec .venv/bin/python -m pytest "$@"
