"""International host names are read as browsers and curl read them (IDNA 2008, UTS #46)."""

import pytest

from firewall.policy.hosts import InvalidHost, normalize_host


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2003 would give fass.de, another domain
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("ＡＰＩ.openai.com", "api.openai.com"),  # full-width letters map to ASCII
        ("xn--fa-hia.de", "xn--fa-hia.de"),
    ],
)
def test_international_names_normalise_like_browsers(name, expected):
    assert normalize_host(name) == expected


def test_a_zero_width_joiner_is_refused_not_dropped():
    with pytest.raises(InvalidHost):
        normalize_host("exa\u200dmple.com")
