"""Asking the engine about a destination that may need DNS: once without it, then with it.

A destination the policy refuses is never looked up (no DNS query leaves for a host
nobody may reach); one it may allow is resolved and decided again on the addresses
the proxy would connect to, which may refuse it (`private_address`). A lookup still
cached gives the same answer in one step.
"""

from __future__ import annotations

from dataclasses import replace

from firewall.policy import CompiledPolicy, Decision, Reason, Request, Verdict, decide
from firewall.proxy.resolver import Resolver


async def decide_with_addresses(
    policy: CompiledPolicy, request: Request, resolver: Resolver, now: float
) -> tuple[Decision, tuple[str, ...]]:
    """(the decision, the addresses it was made with: empty when none were needed).
    Raises OSError when the destination cannot be resolved."""
    cached = resolver.cached(request.host, request.port)
    if cached is not None:
        decision = decide(policy, replace(request, addresses=cached), now)
        # The addresses refused it: the address-free decision may refuse it first, for another reason.
        if decision.reason is not Reason.PRIVATE_ADDRESS:
            return decision, cached
    decision = decide(policy, request, now)
    if decision.verdict is Verdict.BLOCK:
        return decision, ()
    addresses = await resolver.lookup(request.host, request.port)
    return decide(policy, replace(request, addresses=addresses), now), addresses
