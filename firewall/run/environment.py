"""The environment an agent runs in under `firewall run`.

Every proxy variable points at the proxy (with the agent's credentials),
`NO_PROXY` is cleared, every trust variable a common runtime reads names a
bundle of the system's roots plus our CA (whatever the parent had: a machine
may already point them at the system bundle, which lacks our CA), Node gets a
preload that gives its built-in clients the proxy, SDKs get placeholder keys,
and nothing of the firewall's own (its home, its passphrase) or any real secret
value is passed on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
CLEARED = ("NO_PROXY", "no_proxy")
# Each names one file of trusted roots that replaces the reader's own, so each gets the whole
# bundle (system roots plus our CA). Who reads it, for docs/proxy.md and the tests:
BUNDLE_VARIABLES = (
    "SSL_CERT_FILE",  # OpenSSL (Python ssl, httpx, openai, aiohttp, Ruby, Go on Linux, uv, .NET)
    "REQUESTS_CA_BUNDLE",  # requests (and pip through it)
    "CURL_CA_BUNDLE",  # curl
    "CODEX_CA_CERTIFICATE",  # the Codex CLI
    "GIT_SSL_CAINFO",  # git over HTTPS
    "PIP_CERT",  # pip (its --cert option)
    "HTTPLIB2_CA_CERTS",  # httplib2 (google-api-python-client)
    "AWS_CA_BUNDLE",  # the AWS SDKs and CLI
    "CARGO_HTTP_CAINFO",  # cargo
    "DENO_CERT",  # Deno
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",  # gRPC's C core (Python, Ruby, PHP, C++ grpc)
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",  # the Google Cloud CLI
    "NIX_SSL_CERT_FILE",  # Nix
    "BUNDLE_SSL_CA_CERT",  # Ruby's bundler
    "npm_config_cafile",  # npm, pnpm
    "NPM_CONFIG_CAFILE",
)
NODE_EXTRA_CA = "NODE_EXTRA_CA_CERTS"  # Node adds this file to its built-in roots: our CA alone
FIREWALL_PREFIX = "FIREWALL_"


def proxy_url(port: int, agent: str, token: str) -> str:
    return f"http://{quote(agent, safe='')}:{quote(token, safe='')}@127.0.0.1:{port}"


def child_environment(
    parent: Mapping[str, str],
    *,
    proxy: str,
    bundle: Path,
    ca_cert: Path,
    placeholders: Mapping[str, str],
    secret_values: Iterable[str] = (),
    wgetrc: Path | None = None,
    node_preload: Path | None = None,
) -> dict[str, str]:
    secrets = [value for value in secret_values if value]
    env = {
        name: value
        for name, value in parent.items()
        if not name.startswith(FIREWALL_PREFIX)
        and name not in CLEARED
        and not any(secret in value for secret in secrets)
    }
    for name in PROXY_VARIABLES:
        env[name] = proxy
    for name in BUNDLE_VARIABLES:
        env[name] = str(bundle)
    env[NODE_EXTRA_CA] = str(ca_cert)
    env["NODE_USE_ENV_PROXY"] = "1"
    if wgetrc is not None:
        env["WGETRC"] = str(wgetrc)  # Debian's wget reads no CA variable, only its wgetrc
    if node_preload is not None:
        env["NODE_OPTIONS"] = with_preload(env.get("NODE_OPTIONS", ""), node_preload)
    env.update(placeholders)
    return env


def with_preload(node_options: str, preload: Path) -> str:
    """NODE_OPTIONS with `--require PRELOAD` first (the agent's own options kept after it)."""
    quoted = '"' + str(preload).replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"--require {quoted} {node_options}".strip()
