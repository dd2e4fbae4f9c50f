"""Running the proxy: mitmproxy's master, our addons, the CA, upstream trust, a clean stop.

`serve()` runs in the foreground until SIGTERM/SIGINT. When the proxy is
listening it writes a state file (pid, port) that `firewall run`,
`proxy status` and `proxy stop` read; a clean stop flushes the audit log and
removes the state file.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time

from mitmproxy import ctx
from mitmproxy.master import Master
from mitmproxy.options import Options

from firewall.approvals.broker import ApprovalBroker
from firewall.audit import AuditWriteError, ProcessAuditWriter
from firewall.proxy import ca
from firewall.proxy.addons.audit import Auditor, CountingWriter
from firewall.proxy.addons.audit_gate import AuditGate
from firewall.proxy.addons.budgets import BudgetMeter
from firewall.proxy.addons.collector import Collector
from firewall.proxy.addons.dial_guard import DialGuard
from firewall.proxy.addons.drain import Drain
from firewall.proxy.addons.enforce import Enforcer
from firewall.proxy.addons.framing import Framing
from firewall.proxy.addons.identity import Identity
from firewall.proxy.addons.probe import Probe
from firewall.proxy.addons.reauthorize import Reauthorize
from firewall.proxy.addons.scrub import Scrubber
from firewall.proxy.addons.streaming import Streaming
from firewall.proxy.addons.tls_buffers import ReleaseTLSBuffers
from firewall.proxy.addons.tunnels import Tunnels
from firewall.proxy.addons.upstream_errors import UpstreamErrors
from firewall.proxy.addons.upstream_errors import install as answer_upstream_errors_in_json
from firewall.proxy.addons.upstream_sessions import UpstreamSessions
from firewall.proxy.addons.upstream_tls import UpstreamTLSName
from firewall.proxy.addons.ws_budgets import WebSocketMeter
from firewall.proxy.addons.ws_guard import WebSocketGuard
from firewall.proxy.budget_snapshot import BudgetSnapshot, snapshot_path
from firewall.proxy.budget_store import BudgetStore
from firewall.proxy.chain import Chain
from firewall.proxy.counts import COUNTS_TIMEOUT, CountClient
from firewall.proxy.limiter import Limiter
from firewall.proxy.listening import listen_on_inherited, listen_sharing_port, port_in_use
from firewall.proxy.log_file import configure_logging  # noqa: F401  (its home was this module)
from firewall.proxy.loop_probe import LoopProbe, wanted
from firewall.proxy.master import build_master
from firewall.proxy.oauth import TokenKeeper
from firewall.proxy.resolver import Resolver
from firewall.proxy.runtime import Runtime, pinned_policy_from
from firewall.proxy.settings import ProxySettings
from firewall.proxy.state_file import StateFile
from firewall.proxy.stopping import sign_audit_head, take_stop_request
from firewall.proxy.upstream_client import upstream_client
from firewall.redaction.logs import install as redact_logs

log = logging.getLogger("firewall.proxy")
BODY_SIZE_LIMIT = "64m"
SHUTDOWN_GRACE = 0.2  # seconds for mitmproxy to write the 503s of requests held at shutdown


class ProxyStartError(Exception):
    pass


def check_port_free(port: int) -> None:
    try:
        in_use = port_in_use(port)
    except OSError as exc:
        raise ProxyStartError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from None
    if in_use:
        raise ProxyStartError(f"port {port} on 127.0.0.1 is in use; pick another with --port")


class _Ready:
    """Once mitmproxy listens: write the state file, then freeze the start-up heap.

    A full garbage-collection pass stalls every in-flight request for tens of
    milliseconds; freezing what start-up allocated keeps those passes short.
    """

    def __init__(self, settings: ProxySettings, runtime: Runtime, state: StateFile):
        self.settings = settings
        self.runtime = runtime
        self.state = state

    def running(self) -> None:
        addresses = ctx.master.addons.get("proxyserver").listen_addrs()
        port = addresses[0][1]
        state = {
            "pid": os.getpid(),
            "port": port,
            "started": time.time(),
            "pinned_policy": self.runtime.pinned,
            "limits_storage": self.settings.limits_storage,
            "upstream_ca": str(self.settings.upstream_ca.resolve()) if self.settings.upstream_ca else None,
        }
        self.state.listening(state)
        log.info("listening on 127.0.0.1:%s", port)
        gc.collect()
        gc.freeze()


async def serve(settings: ProxySettings) -> None:
    home = settings.home
    port = settings.port
    if settings.listen_fd is not None:
        port = listen_on_inherited(settings.listen_fd)
    elif settings.worker is not None:
        listen_sharing_port(port)  # the supervisor holds the port; every worker listens on it
    else:
        check_port_free(port)
    ca.write_agent_bundles(home)  # creates the CA on first start; refuses a CA key others can read
    pinned = pinned_policy_from(settings.pinned_policy) if settings.pinned_policy else None
    state_file = StateFile(settings.state_file)
    runtime = Runtime(
        home, pinned, on_problem=state_file.problem, on_policy=lambda policy: state_file.note("policy", policy)
    )
    runtime.load()
    redact_logs(lambda: runtime.secret_index)
    counts = CountClient(settings.counts_socket) if settings.counts_socket is not None else None
    timeout = settings.limits_timeout
    if counts is not None and settings.limits_storage.startswith("memory://"):
        timeout = max(timeout, COUNTS_TIMEOUT)  # local: only a starved CPU is slow (counts.py)
    limiter = Limiter(settings.limits_storage, timeout=timeout, on_problem=state_file.problem, counts=counts)
    await limiter.check_storage()
    trust = ca.upstream_trust_bundle(home, settings.upstream_ca)

    loop = asyncio.get_running_loop()
    resolver = Resolver()
    resolver.install(loop)
    client = upstream_client(trust)  # the proxy's own requests: token refreshes, the retry after a 401
    keeper = TokenKeeper(home, runtime.secret, resolver, client)
    writer = ProcessAuditWriter(home.database) if settings.audit else CountingWriter()
    if not settings.audit:
        log.warning("audit log OFF (--audit off, a benchmark knob): requests are counted, not recorded")
    broker = ApprovalBroker(home.database)
    await broker.start()  # expires what a crashed proxy left pending
    options = Options(listen_host="127.0.0.1", listen_port=port, confdir=str(home.ca_dir))
    master = build_master(options)  # mitmproxy's proxying addons only: firewall/proxy/master.py
    master.options.update(
        connection_strategy="lazy",  # connect upstream only after the request was decided
        ssl_verify_upstream_trusted_ca=str(trust),
        ssl_insecure=False,
        upstream_cert=False,
        rawtcp=False,  # mitmproxy relays nothing on its own; a tunnel's raw TCP is the policy's (addons/tunnels.py)
        http3=False,
        body_size_limit=BODY_SIZE_LIMIT,
    )
    answer_upstream_errors_in_json()
    auditor = Auditor(runtime, writer)
    identity = Identity(runtime)
    drain = Drain(auditor.record_now)
    budgets = BudgetStore(limiter)
    master.addons.add(
        Chain(  # one addon to mitmproxy: firewall/proxy/chain.py
            identity,
            AuditGate(writer, settings.audit_full_action, on_problem=state_file.problem),
            drain,
            Tunnels(runtime, identity, resolver, auditor),
            Framing(),
            Probe(),  # firewall doctor's reserved name, answered before any policy sees it
            Enforcer(runtime, limiter, resolver, broker, oauth=keeper, budgets=budgets),
            DialGuard(resolver),
            Streaming(),
            Reauthorize(keeper, client),
            Scrubber(runtime, auditor),  # after every addon that may buffer or replace a response
            BudgetMeter(runtime, budgets),  # after Scrubber: its stream wrapper sees the upstream's chunks
            UpstreamTLSName(),
            UpstreamSessions(),  # TLS session resumption with upstreams
            ReleaseTLSBuffers(),  # OpenSSL's buffers only while in use (memory)
            UpstreamErrors(),  # before the auditor: the row names the upstream failure
            auditor,
            WebSocketGuard(runtime, auditor),
            WebSocketMeter(runtime, budgets, auditor, limiter),  # after the guard: a message it dropped starts no turn
            _Ready(settings, runtime, state_file),
            Collector(lambda: bool(drain.in_flight)),  # closed connections freed soon (memory)
        )
    )
    stopping: list[asyncio.Task] = []
    report: dict = {}

    def on_stop_signal() -> None:
        if stopping:  # a second signal: cut what is still in flight now
            drain.cut_now()
            return
        grace = take_stop_request(settings.state_file)
        stopping.append(loop.create_task(_stop(master, broker, drain, grace, report)))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop_signal)
    runtime.start()
    snapshot = _snapshot(settings, runtime, budgets)
    if snapshot:
        snapshot.start()  # for `firewall budgets`: the counters live in this process under memory://
    probe = LoopProbe(loop) if wanted() else None  # diagnosis only: FIREWALL_LOOP_PROBE=1
    if probe:
        probe.start()
    try:
        await master.run()
    finally:
        if probe:
            log.info("%s", probe.stop())
        if snapshot:
            await snapshot.stop()
        if counts is not None:
            await counts.close()
        await broker.close()
        runtime.stop()
        try:
            writer.close()  # last: every flow has ended (addons/drain.py), so every row is in it
        except AuditWriteError as exc:  # say what was lost, and still finish stopping
            log.error("%s", exc)
            lost, cause = getattr(writer, "unwritten", 0), getattr(writer, "lost_cause", None)
            report.update(lost=lost or "an unknown number of", lost_cause=cause or str(exc))
        if not settings.audit:
            log.warning("audit log was OFF: %d records counted, none written", writer.written)
        elif settings.worker is None:  # a worker's supervisor signs once, after all its workers stopped
            sign_audit_head(home)
        await client.aclose()
        if settings.worker is not None:  # its supervisor sums the reports, and logs how many rows each wrote
            state_file.stopped({**report, "rows": writer.written})
        elif report.get("cut") or report.get("lost"):
            state_file.stopped(report)  # `proxy stop` prints it, then removes the file
        else:
            state_file.remove()
        if trust.parent == home.run_dir:  # this process's upstream trust bundle (--upstream-ca), ~220 KB
            trust.unlink(missing_ok=True)
        ca.restrict_ca_files(home)


def _snapshot(settings: ProxySettings, runtime: Runtime, budgets: BudgetStore) -> BudgetSnapshot | None:
    """The budgets snapshot this process writes: a proxy of its own, or worker 0 of several, for
    them all (under its supervisor's pid, which `proxy status` names)."""
    if settings.worker is None:
        return BudgetSnapshot(snapshot_path(settings.state_file), runtime, budgets, settings.limits_storage)
    if settings.budgets_file is None:
        return None
    return BudgetSnapshot(settings.budgets_file, runtime, budgets, settings.limits_storage, pid=os.getppid())


async def _stop(master: Master, broker: ApprovalBroker, drain: Drain, grace: float, report: dict) -> None:
    """Answer the requests held for approval (503), drain the rest (addons/drain.py), then stop
    mitmproxy; the audit writer closes after it, in serve()."""
    try:
        if await broker.close("the proxy stopped"):
            await asyncio.sleep(SHUTDOWN_GRACE)
        report.update(await drain.drain(grace))
    except Exception:  # the stop must happen whatever failed on the way
        log.exception("draining the proxy failed; stopping it now")
    finally:
        master.shutdown()
