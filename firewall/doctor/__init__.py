"""`firewall doctor`: checks of the setup a user has, and probes of the runtimes on the machine.

checks.py looks at the state folder, vault, policy, proxy, isolation and limits store;
probes.py runs each runtime found under `firewall run` against the reserved name the proxy
answers itself (proxy/addons/probe.py); report.py prints them. Nothing here changes stored state.
"""

from firewall.doctor.line import Line, Status

__all__ = ["Line", "Status"]
