"""The firewall's addons, offered to mitmproxy as one addon.

mitmproxy offers every hook of every flow (8-10 per request, counting the
`update` after each) to every addon in turn, through a context manager, an
addon-tree walk and a lookup each: a few microseconds per addon per hook,
whether the addon has that hook or not. With eight addons of our own that was
about a tenth of the proxy's CPU time per request. `Chain` stands in for all of
them: it has exactly the hooks they have, and each calls theirs directly, in
the order given, the way mitmproxy would: a coroutine's result is awaited, and
an error is logged (as mitmproxy logs it) without keeping the next addon from
its turn.

Unlike mitmproxy, an error does not leave the flow to go on as if nothing had
happened: a part that failed may be the one that checks the agent's identity
or scrubs a secret from the answer. The flow is refused (500 `firewall_error`
before anything went upstream) or killed (after), and the next parts run on a
flow that already has its answer.
"""

from __future__ import annotations

import inspect
import logging

import mitmproxy.addonmanager  # noqa: F401  (these modules define the hooks `all_hooks` names)
import mitmproxy.proxy.layers  # noqa: F401
import mitmproxy.proxy.server_hooks  # noqa: F401
from mitmproxy import exceptions, hooks, http

from firewall.policy.outcomes import Outcome
from firewall.proxy.refusals import ProxyReason
from firewall.proxy.responses import refuse

log = logging.getLogger("mitmproxy.addonmanager")  # where mitmproxy logs an addon's error


class Chain:
    name = "firewall"

    def __init__(self, *parts: object):
        # Not `addons`: mitmproxy would walk an attribute of that name and call every part twice.
        self.parts = parts
        for hook in sorted(hooks.all_hooks):
            handlers = [(part, getattr(part, hook)) for part in parts if callable(getattr(part, hook, None))]
            if handlers:
                setattr(self, hook, _dispatcher(hook, handlers))

    def __repr__(self) -> str:
        return f"Chain({', '.join(type(part).__name__ for part in self.parts)})"


SYNC_HOOKS = frozenset({"load", "configure"})  # mitmproxy calls these without awaiting


def _dispatcher(hook: str, handlers: list[tuple[object, object]]):
    if hook in SYNC_HOOKS:

        def dispatch(*args):
            for _, handler in handlers:
                try:
                    handler(*args)
                except (exceptions.AddonHalt, exceptions.OptionsError):
                    raise
                except Exception as exc:
                    log.error(f"Addon error: {exc}", exc_info=True)

        return dispatch

    async def dispatch_async(*args):
        for _, handler in handlers:
            try:
                result = handler(*args)
                if result is not None and inspect.isawaitable(result):
                    await result
            except (exceptions.AddonHalt, exceptions.OptionsError):
                raise
            except Exception as exc:
                log.error(f"Addon error: {exc}", exc_info=True)
                fail_closed(hook, args, exc)

    return dispatch_async


# Hooks that run before a request goes upstream: an error there is answered locally.
BEFORE_UPSTREAM = frozenset({"http_connect", "requestheaders", "request"})


def fail_closed(hook: str, args: tuple, exc: Exception) -> None:
    """Refuse or kill the flow a failed hook was about."""
    flow = args[0] if args else None
    if hook == "server_connect":
        flow.server.error = "the firewall could not check this connection"
        return
    if isinstance(flow, http.HTTPFlow) and hook in BEFORE_UPSTREAM and flow.response is None:
        refuse(flow, Outcome.ERROR, ProxyReason.INTERNAL_ERROR, f"{type(exc).__name__} in {hook}")
        return
    if getattr(flow, "killable", False):
        flow.kill()
