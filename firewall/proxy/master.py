"""The mitmproxy master the firewall runs: only the mitmproxy addons a forward proxy needs.

mitmproxy's `DumpMaster` loads about 35 addons (replay, scripts, map/modify,
sticky cookies, onboarding, export, ...), every one of them off unless its
option is set. mitmproxy offers every hook of every flow to every addon in
turn, so each addon costs a few microseconds per hook, 8-10 hooks per request,
whether it does anything or not: with DumpMaster's set that dispatch was about
a fifth of the proxy's CPU time per request. The firewall sets none of those
options, so it loads only what proxying, TLS interception and its safety
checks need (in DumpMaster's order):

  core          options, commands, option checks
  block         refuses clients from outside this machine (`block_global`)
  disable_h2c   refuses cleartext HTTP/2 upgrades, which would escape inspection
  proxyserver   listening, connections, `connection_strategy`, `body_size_limit`
  next_layer    which protocol layer the agent's connection to the proxy gets (inside a
                CONNECT tunnel the firewall's own `Tunnels` addon decides, see
                addons/tunnels.py: mitmproxy would relay what does not look like HTTP)
  agent_tls     (the firewall's) the agent's TLS context, made once per leaf instead of per
                connection (addons/agent_tls.py); it must come before tlsconfig
  tlsconfig     certificates for agents, checking upstream certificates
  errorcheck    a start-up error stops the proxy instead of leaving it half up

Left out, with it: the onboarding app (it answered http://mitm.it before any
policy decision), the `proxyauth` option (the identity addon checks agents'
credentials itself), and DNS-mode addons (the firewall runs in regular mode).
"""

from __future__ import annotations

from mitmproxy.addons import block, core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master
from mitmproxy.options import Options
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layer import NextLayer
from mitmproxy.proxy.layers import HttpLayer

from firewall.proxy.addons.agent_tls import AgentTLS


def in_tunnel(context: Context) -> bool:
    """Whether a connection is inside a CONNECT (an HTTP layer of the proxy's own is below it)."""
    return any(isinstance(below, HttpLayer) for below in context.layers)


class ProxyNextLayer(next_layer.NextLayer):
    """mitmproxy's choice of layer for the agent's connection to the proxy, and for nothing inside
    a tunnel: there, a layer it chose would already be on the stack when the firewall decides."""

    def next_layer(self, nextlayer: NextLayer) -> None:
        if not in_tunnel(nextlayer.context):
            super().next_layer(nextlayer)


def build_master(options: Options) -> Master:
    """A mitmproxy Master with the addons above; call it inside the running event loop."""
    master = Master(options, with_termlog=False)
    master.addons.add(
        core.Core(),
        block.Block(),
        disable_h2c.DisableH2C(),
        proxyserver.Proxyserver(),
        ProxyNextLayer(),
        AgentTLS(),
        tlsconfig.TlsConfig(),
        errorcheck.ErrorCheck(),
    )
    return master
