"""Try every way out of a `firewall run` sandbox that ignores the proxy; write what happened as JSON.

    python escape.py OUT TCP_PORT UDP_PORT DNS_PORT UPSTREAM_URL

Each attempt records ok (it got through), error, and seconds. Standard library only
(also run by an interpreter without the project's packages).
"""

import json
import os
import socket
import struct
import sys
import time
import urllib.request

out, tcp_port, udp_port, dns_port, upstream = (
    sys.argv[1],
    int(sys.argv[2]),
    int(sys.argv[3]),
    int(sys.argv[4]),
    sys.argv[5],
)
TIMEOUT = 3.0


def attempt(name, action):
    started = time.monotonic()
    try:
        detail = action()
        results[name] = {"ok": True, "detail": detail, "seconds": time.monotonic() - started}
    except Exception as exc:  # every failure is a result here
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "seconds": time.monotonic() - started}


def tcp(host, port):
    def go():
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.sendall(b"escape-tcp\n")
            return "connected"

    return go


def udp(port, payload):
    def go():
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.sendto(payload, ("127.0.0.1", port))
            return "sent"  # sending succeeds on any loopback; the test checks what arrived outside

    return go


def dns_query(name):
    header = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return header + labels + b"\x00" + struct.pack(">HH", 1, 1)


def resolve():
    return socket.getaddrinfo("example.com", 443)[0][4][0]


def direct_https():
    # No proxy: a client that ignores HTTPS_PROXY (as Node 20's fetch or aiohttp's default do).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(upstream + "/v1/models", timeout=TIMEOUT).status


def proxied_https():
    import ssl

    context = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))  # proxies from the env
    return opener.open(upstream + "/v1/models", timeout=10).status


results = {}
attempt("tcp_loopback", tcp("127.0.0.1", tcp_port))
attempt("tcp_other_address", tcp("10.255.255.1", 443))
attempt("tcp_ipv6_loopback", tcp("::1", tcp_port))
attempt("udp_loopback", udp(udp_port, b"escape-udp"))
attempt("dns_loopback_resolver", udp(dns_port, dns_query("escape.example")))
attempt("dns_system_resolver", resolve)
attempt("https_direct", direct_https)
if os.environ.get("HTTPS_PROXY"):
    attempt("https_through_proxy", proxied_https)
with open(out + ".tmp", "w") as handle:
    json.dump(results, handle)
os.rename(out + ".tmp", out)
