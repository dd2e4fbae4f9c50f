"""All of the doctor's checks, in the order the report shows them."""

from __future__ import annotations

from firewall.doctor import checks, probes
from firewall.doctor.line import Line, Status
from firewall.state.home import Home


def diagnose(home: Home, with_probes: bool = True) -> list[Line]:
    state = checks.state_folder(home)
    lines = [state]
    if state.status is Status.FAIL and not home.root.is_dir():
        return lines  # nothing else to look at
    lines.append(checks.vault(home))
    policy = checks.policy(home)
    lines.append(policy)
    proxy, info = checks.proxy(home)
    lines.append(proxy)
    isolation = checks.isolation()
    lines.append(isolation)
    lines.append(checks.limits_store(info))
    if with_probes:
        use_running = info is not None and policy.status is Status.OK
        isolate = isolation.status is Status.OK
        lines += probes.run_probes(use_running=use_running, isolate=isolate, cache_dir=home.root / "cache")
    return lines
