"""Address classes, as properties over a table built from the IANA special-purpose registries.

The table below is transcribed from the registries independently of firewall/policy/addresses.py
(a second reading, so the module is not checked against itself). For every entry: random addresses
inside it are not public, and every IPv6 form that embeds one of its IPv4 addresses is not public
either. Controls: ordinary public addresses are public, and an embedding form of a public IPv4
address is not public but also not link-local (the documented rule: a host block naming the host
exactly may reach it, as it may reach any private address).
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firewall.policy.addresses import SPECIAL, classify

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# IANA IPv4 Special-Purpose Address Registry: every row.
IPV4_REGISTRY = [
    "0.0.0.0/8",
    "0.0.0.0/32",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.0.0/29",
    "192.0.0.8/32",
    "192.0.0.9/32",
    "192.0.0.10/32",
    "192.0.0.170/32",
    "192.0.0.171/32",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
]
# IANA IPv6 Special-Purpose Address Registry: every row.
IPV6_REGISTRY = [
    "::1/128",
    "::/128",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "100:0:0:1::/64",
    "2001::/23",
    "2001::/32",
    "2001:1::1/128",
    "2001:1::2/128",
    "2001:1::3/128",
    "2001:2::/48",
    "2001:3::/32",
    "2001:4:112::/48",
    "2001:10::/28",
    "2001:20::/28",
    "2001:30::/28",
    "2001:db8::/32",
    "2002::/16",
    "2620:4f:8000::/48",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
]
# Not in those registries, and not public either: multicast, and IPv6 outside 2000::/3 (reserved space).
OTHERS = ["224.0.0.0/4", "ff00::/8", "::/8", "4000::/3", "fec0::/10"]
LINK_LOCAL = ["169.254.0.0/16", "fe80::/10"]

PUBLIC_IPV4 = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "140.82.112.3", "192.0.1.1", "192.0.3.1", "223.255.255.254"]
PUBLIC_IPV6 = [
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "2620:fe::fe",
    "2001:4860:4860::8888",
    "2001:200::1",
    "3ffe::1",
]

NETWORKS = [ipaddress.ip_network(prefix) for prefix in IPV4_REGISTRY + IPV6_REGISTRY + OTHERS]


def _inside(prefix: str):
    network = ipaddress.ip_network(prefix)
    return st.integers(0, network.num_addresses - 1).map(lambda offset: network[offset])


# IPv4-mapped ::ffff:0:0/96 is the socket API's spelling of an IPv4 address: it is that address
# (tested below), so it is public when that address is.
MAPPED = "::ffff:0:0/96"
special_addresses = st.sampled_from([p for p in IPV4_REGISTRY + IPV6_REGISTRY + OTHERS if p != MAPPED]).flatmap(_inside)
special_ipv4 = st.sampled_from([prefix for prefix in IPV4_REGISTRY + OTHERS if "." in prefix]).flatmap(_inside)
link_local_ipv4 = _inside("169.254.0.0/16")


def embeddings(v4: ipaddress.IPv4Address, noise: int = 0x1234_5678) -> list[str]:
    """Every IPv6 form that carries `v4`: the packet reaches v4 (or a translator towards it)."""
    value = int(v4)
    rfc6052 = []  # NAT64 local-use 64:ff9b:1::/48 at each RFC 6052 prefix length it allows
    for length in (48, 56, 64, 96):
        bits = format(value, "032b")
        if length == 96:
            layout = "0" * (96 - 48) + bits
        else:
            before_u = 64 - length
            layout = "0" * (length - 48) + bits[:before_u] + "00000000" + bits[before_u:]
        suffix = int(layout.ljust(80, "0"), 2)
        rfc6052.append(ipaddress.IPv6Address((0x0064_FF9B_0001 << 80) | suffix))
    teredo_server = ipaddress.IPv4Address("65.54.227.120")
    forms = [
        ipaddress.IPv6Address((0xFFFF << 32) | value),  # IPv4-mapped
        ipaddress.IPv6Address(value),  # IPv4-compatible
        ipaddress.IPv6Address((0xFFFF << 48) | value),  # SIIT IPv4-translated
        ipaddress.IPv6Address((0x0064_FF9B << 96) | value),  # NAT64 well-known
        *rfc6052,
        ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | noise),  # 6to4
        ipaddress.IPv6Address(
            (0x2001_0000 << 96) | (int(teredo_server) << 64) | (noise << 32) | (value ^ 0xFFFF_FFFF)
        ),  # Teredo client, bit-inverted
        ipaddress.IPv6Address((0x2001_0000 << 96) | (value << 64) | (noise << 32) | 0x1234),  # Teredo server
    ]
    return [str(form) for form in forms if int(form) > 1]  # ::v4 for 0.0.0.0/0.0.0.1 is :: or ::1


def test_the_module_table_covers_the_registries_row_by_row():
    module = {entry.network for entry in SPECIAL}
    rows = {ipaddress.ip_network(prefix) for prefix in [*IPV4_REGISTRY, *IPV6_REGISTRY, "224.0.0.0/4", "ff00::/8"]}
    assert rows - module == set()


@pytest.mark.parametrize("prefix", IPV4_REGISTRY + IPV6_REGISTRY + OTHERS)
def test_both_ends_of_every_entry_are_not_public(prefix):
    network = ipaddress.ip_network(prefix)
    for address in (network[0], network[-1]):
        assert not classify(str(address)).public, address


@PROPERTY
@given(special_addresses)
def test_an_address_in_a_registry_entry_is_not_public(address):
    found = classify(str(address))
    assert not found.public and found.why


@PROPERTY
@given(st.integers(0, 0xFFFF_FFFF).map(ipaddress.IPv4Address))
def test_an_ipv4_mapped_address_is_classified_as_its_ipv4_address(v4):
    mapped, plain = classify(f"::ffff:{v4}"), classify(str(v4))
    assert (mapped.public, mapped.link_local) == (plain.public, plain.link_local)
    assert mapped.why.startswith(plain.why)


@PROPERTY
@given(special_ipv4, st.integers(0, 0xFFFF_FFFF))
def test_every_form_embedding_a_special_ipv4_address_is_not_public(v4, noise):
    for form in embeddings(v4, noise):
        assert not classify(form).public, (v4, form)


@PROPERTY
@given(link_local_ipv4, st.integers(0, 0xFFFF_FFFF))
def test_a_link_local_address_and_every_form_embedding_it_keep_the_link_local_rule(v4, noise):
    assert classify(str(v4)).link_local
    for form in embeddings(v4, noise):
        assert classify(form).link_local, (v4, form)


@PROPERTY
@given(_inside("fe80::/10"), st.sampled_from(["eth0", "1", "lo"]))
def test_a_link_local_ipv6_address_with_or_without_a_zone_keeps_the_link_local_rule(address, zone):
    assert classify(str(address)).link_local
    assert classify(f"{address}%{zone}").link_local and not classify(f"{address}%{zone}").public


@PROPERTY
@given(st.integers(0, 0xFFFF_FFFF).map(ipaddress.IPv4Address))
def test_an_ipv4_address_outside_every_entry_is_public(address):
    inside = any(address in network for network in NETWORKS if network.version == 4)
    assert classify(str(address)).public is not inside


@PROPERTY
@given(st.integers(0x2000 << 112, (0x4000 << 112) - 1).map(ipaddress.IPv6Address))
def test_an_ipv6_global_unicast_address_outside_every_entry_is_public(address):
    inside = any(address in network for network in NETWORKS if network.version == 6)
    assert classify(str(address)).public is not inside


@PROPERTY
@given(
    st.one_of(
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
    )
)
def test_what_pythons_ipaddress_calls_not_global_is_not_public_here_either(address):
    if not address.is_global:
        assert not classify(str(address)).public


@pytest.mark.parametrize("address", PUBLIC_IPV4 + PUBLIC_IPV6)
def test_control_ordinary_public_addresses_are_public(address):
    found = classify(address)
    assert (found.public, found.link_local, found.why) == (True, False, "")


@pytest.mark.parametrize("v4", PUBLIC_IPV4)
def test_control_a_form_embedding_a_public_ipv4_address_is_not_public_but_not_link_local(v4):
    """The documented rule: each embedding prefix is itself special-purpose, so never public; what it
    wraps being public, a host block naming the host exactly may reach it (no link-local rule). The
    IPv4-mapped form is the address itself: public."""
    mapped, *others = embeddings(ipaddress.IPv4Address(v4))
    assert classify(mapped).public
    for form in others[:3] + others[7:]:  # (the NAT64 local-use guesses may land anywhere)
        found = classify(form)
        assert (found.public, found.link_local) == (False, False), form
        assert v4 in found.why


@pytest.mark.parametrize(
    ("address", "wraps"),
    [
        ("64:ff9b::7f00:1", "127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("::7f00:1", "127.0.0.1"),
        ("::ffff:0:7f00:1", "127.0.0.1"),
        ("2002:7f00:1::1", "127.0.0.1"),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo, client bits inverted
        ("64:ff9b:1::7f00:1", "127.0.0.1"),
    ],
)
def test_the_issue_s_spellings_say_what_they_wrap(address, wraps):
    found = classify(address)
    assert not found.public and f"wrapping {wraps}" in found.why


def test_text_that_is_not_an_address_is_not_public_and_never_exempt():
    found = classify("not-an-address")
    assert (found.public, found.link_local) == (False, True)
