"""The exfiltration guard on open WebSockets: what the agent sends after the upgrade.

The upgrade request was decided like any request; the messages that follow
are not requests, so each one the agent sends is scanned for vault secrets.
A message carrying a secret the upgrade's decision does not inject
(`leaked_secrets`, the engine's step 10) is dropped, never forwarded, and
logged as an `exfiltration` audit row of its own.
"""

from __future__ import annotations

import logging

from mitmproxy import http

from firewall.policy.engine import leaked_secrets
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
        found = self.runtime.secret_index.find(message.content)
        notes = notes_of(flow)
        leaked = leaked_secrets(found, notes.decision.inject if notes.decision else ())
        if not leaked:
            return
        message.drop()
        names = ", ".join(f'"{name}"' for name in leaked)
        detail = (f"a WebSocket message carried the value of the vault secret {names}, which the policy does "
                  f"not add to this connection; the message was dropped")
        log.warning("%s: %s", notes.request_id, detail)
        self.auditor.record_event(flow, "exfiltration", "exfiltration", detail)
