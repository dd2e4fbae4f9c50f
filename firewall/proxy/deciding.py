"""Asking the engine about a destination it may need the addresses of: the engine says when.

The engine decides on the name first; only a decision that lets the request through
comes back partial (`Decision.needs_addresses`), so a destination the policy refuses
is never looked up (no DNS query leaves for a host nobody may reach). The proxy then
resolves it and asks again with the addresses it would connect to, which may refuse it
(`private_address`). A lookup still cached is passed in the first time, and answers in
one step. The resolver and its cache are the proxy's; the decision is the engine's.
"""

from __future__ import annotations

from dataclasses import replace

from firewall.policy import CompiledPolicy, Decision, Request, Verdict, decide
from firewall.proxy.resolver import Resolver


async def decide_with_addresses(
    policy: CompiledPolicy, request: Request, resolver: Resolver, now: float
) -> tuple[Decision, tuple[str, ...]]:
    """(the decision, the addresses it was made with: empty for a block that needed none).
    Raises OSError when the destination cannot be resolved."""
    cached = resolver.cached(request.host, request.port)
    decision = decide(policy, replace(request, addresses=cached or ()), now)
    if decision.verdict is Verdict.BLOCK or cached is not None:
        return decision, cached or ()
    # Let through: the proxy dials only pinned addresses, so it resolves even an address literal
    # the resolver does not spell as one ("2130706433"), which asks no DNS server.
    addresses = await resolver.lookup(request.host, request.port)
    if not addresses:
        raise OSError(f"{request.host} resolves to no address")
    if decision.needs_addresses:
        decision = decide(policy, replace(request, addresses=addresses), now)
    return decision, addresses
