"""The environment an agent runs in under `firewall run`.

Every proxy variable points at the proxy (with the agent's credentials),
`NO_PROXY` is cleared, every trust variable names a bundle of the system's
roots plus our CA, SDKs get placeholder keys, and nothing of the firewall's
own (its home, its passphrase) or any real secret value is passed on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")
CLEARED = ("NO_PROXY", "no_proxy")
BUNDLE_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "CODEX_CA_CERTIFICATE", "GIT_SSL_CAINFO")
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
    env["NODE_EXTRA_CA_CERTS"] = str(ca_cert)
    env["NODE_USE_ENV_PROXY"] = "1"
    env.update(placeholders)
    return env
