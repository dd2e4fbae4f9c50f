"""The example agents in examples/ run unchanged under `firewall run`."""

import sys
from pathlib import Path

from tests.support.fixtures import REAL_KEY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_openai_sdk_example_chats_through_the_firewall_with_a_placeholder_key(firewall, upstream, proxy):
    firewall.add_secret("openai", REAL_KEY, provider="openai")
    firewall.apply(f"""
credential openai {{
    secret "openai"
    header Authorization = "Bearer {{secret}}"
}}
host localhost:{upstream.port} {{
    inject openai
    allow POST /v1/chat/completions when json.model == "gpt-4o-mini"
}}
""")
    result = firewall.run(
        "run",
        "--agent",
        "chat",
        "--",
        sys.executable,
        str(EXAMPLES / "openai_chat.py"),
        env={"OPENAI_BASE_URL": f"{upstream.base_url}/v1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello"
    assert upstream.seen[-1].headers["authorization"] == f"Bearer {REAL_KEY}"


def test_curl_example_gets_a_readable_refusal_for_an_unknown_host(firewall, proxy):
    firewall.apply("default block\n")
    result = firewall.run("run", "--agent", "shell", "--", "sh", str(EXAMPLES / "curl_models.sh"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("status 403") == 2
    assert '"type": "policy_blocked"' in result.stdout
