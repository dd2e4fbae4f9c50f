"""Fixtures of the client matrix: one state folder, upstream, git host and package index, and proxy
for the whole module; tests/support holds the servers themselves."""

from __future__ import annotations

import pytest

from tests.support.fixtures import REAL_KEY
from tests.support.llm_upstream import serving_llm_upstream
from tests.support.stand_ins import start_stand_in

POLICY = """\
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}

host localhost:{port} {{
    inject openai
    allow GET /v1/models
    allow GET /ws
    allow POST /v1/chat/completions
}}

host localhost:{llm_port} {{
    inject openai
    allow POST /v1/responses
}}

host localhost:{stand_in_port} {{
    inject openai
    allow GET /git/**, /simple/**, /packages/**
    allow HEAD /packages/**
    allow POST /git/probe.git/git-upload-pack
}}
"""


@pytest.fixture(scope="module")
def stand_in(test_ca, tmp_path_factory):
    directory = tmp_path_factory.mktemp("stand-in")
    pem = directory / "cert.pem"
    test_ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    server = start_stand_in(str(pem), directory / "root")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def llm(test_ca, tmp_path_factory):
    """Answers in each API's format (the Responses API, whole and streamed)."""
    with serving_llm_upstream(test_ca, tmp_path_factory.mktemp("llm")) as upstream:
        yield upstream


@pytest.fixture(scope="module")
def matrix(module_firewall, module_upstream, stand_in, llm, module_proxy):
    """The state folder with the key in its vault and the policy applied, the proxy running."""
    fw = module_firewall
    fw.add_secret("openai", REAL_KEY, provider="openai")
    fw.apply(POLICY.format(port=module_upstream.port, stand_in_port=stand_in.port, llm_port=llm.port))
    return fw
