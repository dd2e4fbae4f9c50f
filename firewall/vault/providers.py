"""The provider catalog: what each kind of credential looks like and which variable SDKs read.

`placeholder` is a fake value of the right shape. Agents get it in `env_var`
instead of the real key, so SDKs that check the shape start, and the proxy
swaps in the real credential on the wire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from firewall.oauth.login import InvalidLogin, parse_login
from firewall.vault.errors import InvalidValue, VaultError

MAX_VALUE_CHARS = 64 * 1024


class Kind(StrEnum):
    API_KEY = "api_key"  # a single token without whitespace
    OAUTH = "oauth"  # a JSON login file holding tokens


@dataclass(frozen=True)
class Provider:
    name: str
    description: str
    pattern: re.Pattern[str] | None  # full-match shape of an api_key value; None: an oauth login
    shape: str  # how a value looks, for error messages: "sk-proj-… (sk- followed by …)"
    env_var: str | None
    placeholder: str | None

    @property
    def kind(self) -> Kind:
        return Kind.OAUTH if self.pattern is None else Kind.API_KEY


PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            name="openai",
            description="OpenAI API key",
            # Anthropic keys also start with sk-; they are not OpenAI keys.
            pattern=re.compile(r"sk-(?!ant-)[A-Za-z0-9_-]{20,}"),
            shape="OpenAI keys look like sk-proj-… (sk- followed by at least 20 letters, digits, - or _)",
            env_var="OPENAI_API_KEY",
            placeholder="sk-firewall-placeholder-not-a-real-key",
        ),
        Provider(
            name="anthropic",
            description="Anthropic API key",
            pattern=re.compile(r"sk-ant-[A-Za-z0-9_-]{20,}"),
            shape="Anthropic keys look like sk-ant-api03-… (sk-ant- followed by at least 20 letters, digits, - or _)",
            env_var="ANTHROPIC_API_KEY",
            placeholder="sk-ant-firewall-placeholder-not-a-real-key",
        ),
        Provider(
            name="github",
            description="GitHub token (classic, OAuth, app or fine-grained)",
            pattern=re.compile(r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}"),
            shape=(
                "GitHub tokens look like ghp_… (ghp_, gho_, ghu_, ghs_ or ghr_ followed by "
                "36 letters or digits) or github_pat_…"
            ),
            env_var="GITHUB_TOKEN",
            placeholder="ghp_firewallPlaceholderNotARealToken0000",
        ),
        Provider(
            name="gemini",
            description="Google Gemini API key",
            pattern=re.compile(r"AIza[A-Za-z0-9_-]{35}"),
            shape="Gemini keys look like AIza… (AIza followed by 35 letters, digits, - or _)",
            env_var="GEMINI_API_KEY",
            placeholder="AIzaFirewallPlaceholderNotARealKey00000",
        ),
        Provider(
            name="generic",
            description="Any other token or password",
            pattern=re.compile(r"\S+"),
            shape="a generic secret is any non-empty value without spaces or line breaks",
            env_var=None,
            placeholder="firewall-placeholder-not-a-real-secret",
        ),
        Provider(
            name="codex",
            description="Codex CLI ChatGPT login (the JSON of ~/.codex/auth.json)",
            pattern=None,
            shape='a Codex login is ~/.codex/auth.json after `codex login` with "Sign in with ChatGPT"',
            env_var=None,
            placeholder=None,
        ),
    )
}


def get_provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise VaultError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}") from None


def recognise(value: str) -> Provider | None:
    """The specific key provider whose shape `value` has, if any ("generic" fits everything)."""
    for provider in PROVIDERS.values():
        if provider.name != "generic" and provider.pattern and provider.pattern.fullmatch(value):
            return provider
    return None


def _preview(value: str) -> str:
    """The most of a rejected value an error may show: it could be a real secret of another kind."""
    shown = value[:3].encode("unicode_escape").decode("ascii")
    return f'"{shown}…"' if len(value) > 3 else f'"{shown}"'


def _a_key(name: str) -> str:
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} key"


def _check_api_key(provider: Provider, pattern: re.Pattern[str], value: str) -> None:
    if pattern.fullmatch(value):
        return
    problem = provider.shape
    if any(ch.isspace() for ch in value):
        problem = "it contains spaces or line breaks"
    elif other := recognise(value):
        problem = f"it looks like {_a_key(other.name)} (use --provider {other.name})"
    raise InvalidValue(f"{_preview(value)} is not {_a_key(provider.name)}: {problem}")


def _check_oauth_login(provider: Provider, value: str) -> None:
    """A ChatGPT login with every token, an account id and a readable expiry (never an API-key login)."""
    try:
        parse_login(value)
    except InvalidLogin as exc:
        raise InvalidValue(f"the {provider.name} login {exc}") from None


def validate_value(provider_name: str, value: str) -> None:
    """Raise InvalidValue unless `value` has the shape `provider_name` uses.

    Error messages show at most the value's first 3 characters.
    """
    provider = get_provider(provider_name)
    if not value:
        raise InvalidValue(f"the {provider.name} value is empty")
    if len(value) > MAX_VALUE_CHARS:
        raise InvalidValue(f"the {provider.name} value is {len(value)} characters; the limit is {MAX_VALUE_CHARS}")
    if value == provider.placeholder:
        raise InvalidValue(f"that is the firewall's {provider.name} placeholder, not a real key")
    if provider.pattern is None:  # an oauth provider
        _check_oauth_login(provider, value)
    else:
        _check_api_key(provider, provider.pattern, value)
