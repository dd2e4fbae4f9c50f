"""The proxy's memory addons (structural checks, no byte counts): closed connections are collected
once enough have closed and nothing is in flight, and TLS connections release OpenSSL's buffers."""

from __future__ import annotations

import gc
from types import SimpleNamespace

from OpenSSL import SSL

from firewall.proxy.addons.collector import Collector
from firewall.proxy.addons.tls_buffers import ReleaseTLSBuffers, mode_of


def _full_passes(action) -> int:
    passes = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            passes.append(info)

    gc.callbacks.append(seen)
    try:
        action()
    finally:
        gc.callbacks.remove(seen)
    return len(passes)


def test_a_full_collection_runs_once_enough_connections_closed_and_none_is_in_flight():
    busy = [False]
    collector = Collector(lambda: busy[0], every=3)
    assert _full_passes(lambda: [collector.client_disconnected(object()) for _ in range(2)]) == 0  # control: too few
    assert _full_passes(lambda: collector.client_disconnected(object())) == 1
    assert collector.closed == 0 and collector.collections == 1


def test_no_collection_while_a_request_is_in_flight_then_at_the_next_idle_close():
    busy = [True]
    collector = Collector(lambda: busy[0], every=2)
    assert _full_passes(lambda: [collector.client_disconnected(object()) for _ in range(5)]) == 0
    busy[0] = False
    assert _full_passes(lambda: collector.client_disconnected(object())) == 1


def test_tls_connections_release_their_buffers_on_both_sides():
    addon = ReleaseTLSBuffers()
    for hook in (addon.tls_start_client, addon.tls_start_server):
        ssl_conn = SSL.Connection(SSL.Context(SSL.TLS_METHOD))
        assert not mode_of(ssl_conn) & SSL.MODE_RELEASE_BUFFERS  # control: OpenSSL's default keeps them
        hook(SimpleNamespace(ssl_conn=ssl_conn))
        assert mode_of(ssl_conn) & SSL.MODE_RELEASE_BUFFERS
    addon.tls_start_client(SimpleNamespace(ssl_conn=None))  # a connection another addon handles: nothing to do


def test_the_proxy_runs_both():
    import inspect

    from firewall.proxy import server

    source = inspect.getsource(server.serve)
    assert "ReleaseTLSBuffers()" in source and "Collector(" in source
