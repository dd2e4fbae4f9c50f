"""Shared by the approvals tests: a fixed time and held requests to record."""

from __future__ import annotations

from dataclasses import replace

from firewall.approvals.records import HeldRequest

NOW = 1_700_000_000.0


def held(**changes) -> HeldRequest:
    base = HeldRequest(
        request_id="req_1",
        agent="ci",
        method="POST",
        url="https://api.example.com/v1/fine_tuning/jobs",
        rule="test.policy:4",
        rule_text='approve POST /v1/fine_tuning/** reason "billed"',
        reason="billed",
        preview='{"model": "gpt-4o-mini"} (24 bytes)',
        body_size=24,
        fingerprint="f" * 64,
        policy_sha256="a" * 64,
        timeout=120.0,
    )
    return replace(base, **changes)
