"""Guarding open WebSockets: what the agent sends after the upgrade.

The upgrade request was decided like any request; the messages that follow
are not requests, so each one the agent sends is checked on its own:

- a message carrying a vault secret the upgrade's decision does not inject
  (`leaked_secrets`, the engine's step 10) is dropped, never forwarded, and
  logged as an `exfiltration` audit row of its own;
- once the proxy token the connection was opened with is revoked (its run
  ended), the agent's messages are dropped: nothing of a finished run goes out.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from firewall.policy import Reason
from firewall.policy.engine import leaked_secrets
from firewall.policy.outcomes import Outcome
from firewall.proxy.addons.audit import Auditor
from firewall.proxy.notes import notes_of
from firewall.proxy.runtime import Runtime

log = logging.getLogger("firewall.proxy")


class WebSocketGuard:
    def __init__(self, runtime: Runtime, auditor: Auditor):
        self.runtime = runtime
        self.auditor = auditor

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        message = flow.websocket.messages[-1]
        if not message.from_client:
            return
        notes = notes_of(flow)
        if notes.token_hash and self.runtime.agent_for_token_hash(notes.token_hash) != notes.agent:
            message.drop()
            return
        found = self.runtime.secret_index.find(message.content)
        leaked = leaked_secrets(found, notes.decision.inject if notes.decision else ())
        if not leaked:
            return
        message.drop()
        names = ", ".join(f'"{name}"' for name in leaked)
        detail = (
            f"a WebSocket message carried the value of the vault secret {names}, which the policy does "
            f"not add to this connection; the message was dropped"
        )
        log.warning("%s: %s", notes.request_id, detail)
        self.auditor.record_event(flow, Outcome.EXFILTRATION, Reason.EXFILTRATION, detail)
