from __future__ import annotations

import pytest

from firewall.vault import PROVIDERS, InvalidValue, Kind, VaultError, get_provider, validate_value
from tests.support.logins import login_json

GOOD = [
    ("openai", "sk-proj-" + "Ab3_-" * 10),
    ("openai", "sk-" + "a" * 20),
    ("anthropic", "sk-ant-api03-" + "Qw9-_" * 20),
    ("github", "ghp_" + "a1B2" * 9),
    ("github", "gho_" + "Z" * 36),
    ("github", "ghs_" + "0" * 36),
    ("github", "github_pat_11ABCDEFG0" + "x_Y" * 25),
    ("gemini", "AIza" + "Sy-_0" * 7),
    ("generic", "hunter2"),
    ("generic", "p@ss:w0rd/with-symbols"),
    ("codex", login_json()),
]

BAD = [
    ("openai", "sk-tooShort1234"),
    ("openai", "pk-" + "a" * 30),
    ("openai", "sk-proj-" + "a" * 20 + " trailing"),
    ("openai", "sk-ant-api03-" + "a" * 30),  # an Anthropic key
    ("anthropic", "sk-proj-" + "a" * 30),
    ("github", "ghp_" + "a" * 35),
    ("github", "ghx_" + "a" * 36),
    ("github", "ghp_" + "a" * 35 + "!"),
    ("gemini", "AIza" + "a" * 34),
    ("gemini", "AIzb" + "a" * 35),
    ("generic", "two words"),
    ("generic", "line\nbreak"),
    ("generic", "tab\tinside"),
]


@pytest.mark.parametrize(("provider", "value"), GOOD)
def test_well_formed_values_are_accepted(provider: str, value: str) -> None:
    validate_value(provider, value)


@pytest.mark.parametrize(("provider", "value"), BAD)
def test_malformed_values_are_refused_without_echoing_them(provider: str, value: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        validate_value(provider, value)
    message = str(caught.value)
    assert f"not {'an' if provider[0] in 'aeiou' else 'a'} {provider} key" in message
    assert value not in message
    assert value[4:] not in message
    shown = value[:3].encode("unicode_escape").decode()
    assert f'"{shown}…"' in message


def test_error_message_matches_the_documented_wording() -> None:
    with pytest.raises(InvalidValue) as caught:
        validate_value("openai", "abc")
    assert str(caught.value) == (
        '"abc" is not an openai key: OpenAI keys look like sk-proj-… '
        "(sk- followed by at least 20 letters, digits, - or _)"
    )


def test_a_key_of_another_provider_is_named() -> None:
    with pytest.raises(InvalidValue, match=r"looks like an anthropic key \(use --provider anthropic\)"):
        validate_value("openai", "sk-ant-api03-" + "a" * 30)


def test_whitespace_is_named_as_the_problem() -> None:
    with pytest.raises(InvalidValue, match="contains spaces or line breaks"):
        validate_value("openai", "sk-proj-" + "a" * 20 + "\n")


def test_empty_value_is_refused() -> None:
    with pytest.raises(InvalidValue, match="empty"):
        validate_value("generic", "")


def test_oversized_value_is_refused() -> None:
    with pytest.raises(InvalidValue, match="limit"):
        validate_value("generic", "x" * 70_000)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not json at all", "not valid JSON"),
        ('["tokens"]', 'no "tokens" object'),
        ('{"tokens": "flat string"}', 'no "tokens" object'),
        ('{"OPENAI_API_KEY": null}', 'no "tokens" object'),
    ],
)
def test_codex_login_must_be_json_with_tokens(value: str, problem: str) -> None:
    with pytest.raises(InvalidValue, match=problem):
        validate_value("codex", value)


@pytest.mark.parametrize("name", [p.name for p in PROVIDERS.values() if p.placeholder])
def test_placeholders_have_their_providers_shape_but_are_refused_as_values(name: str) -> None:
    provider = PROVIDERS[name]
    assert provider.pattern is not None and provider.pattern.fullmatch(provider.placeholder or "")
    with pytest.raises(InvalidValue, match="placeholder"):
        validate_value(name, provider.placeholder or "")


def test_catalog_covers_the_required_providers() -> None:
    expected = {
        "openai": "OPENAI_API_KEY",
        "anthropic": "ANTHROPIC_API_KEY",
        "github": "GITHUB_TOKEN",
        "gemini": "GEMINI_API_KEY",
        "generic": None,
        "codex": None,
    }
    assert {name: p.env_var for name, p in PROVIDERS.items()} == expected
    assert PROVIDERS["codex"].kind is Kind.OAUTH
    assert all(p.kind is Kind.API_KEY for name, p in PROVIDERS.items() if name != "codex")


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(VaultError, match="unknown provider 'opneai'; known: openai, anthropic"):
        get_provider("opneai")
