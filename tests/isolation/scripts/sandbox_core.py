"""The sandbox's core (firewall/run: sandbox, netns, relay, supervise), driven without the rest of the project,
so that a user who cannot run the project's interpreter (a test user) still exercises it.

    python3 sandbox_core.py WORKTREE STATE_DIR OUTSIDE_PORT

Serves a stand-in proxy on loopback, starts a sandbox whose command reports what it can reach and
see, and prints that report as JSON. Standard library only.
"""

import os
import socket
import sys
import threading

worktree, state, outside_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, worktree)
from firewall.run import sandbox
from firewall.run.supervise import run_in

stand_in = socket.create_server(("127.0.0.1", 0))


def serve() -> None:
    while True:
        try:
            conn, _ = stand_in.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"proxy-ok")


threading.Thread(target=serve, daemon=True).start()
port = stand_in.getsockname()[1]
probe = f"""
import json, os, socket
report = {{"uid": os.getuid()}}
def reach(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            return sock.recv(16).decode()
    except OSError as exc:
        return type(exc).__name__
report["proxy"] = reach({port})
report["outside"] = reach({outside_port})
report["state"] = sorted(os.listdir({state!r}))
report["parent_env"] = [p for p in os.listdir("/proc") if p.isdigit()
                        and b"SECRET_OF_THE_PARENT" in open(f"/proc/{{p}}/environ", "rb").read()]
print(json.dumps(report))
"""
os.environ["SECRET_OF_THE_PARENT"] = "1"  # in this process's environment, never the sandbox's
mounts = sandbox.Mounts(hidden=(os.path.realpath(state),), readable=(os.path.join(os.path.realpath(state), "ca.pem"),))
env = {k: v for k, v in os.environ.items() if k != "SECRET_OF_THE_PARENT"}
code = run_in(mounts, port, [sys.executable, "-c", probe], env)
stand_in.close()
sys.exit(code)
