"""The first program inside the sandbox (standard library only, started with `python -I -S`).

It binds the proxy's address on the sandbox's own loopback, hands the listening
socket out to `firewall run` over an inherited Unix socket (with its pid, which
the kernel translates into `firewall run`'s view), then becomes the agent with
exec. `firewall run` accepts on that socket and relays each connection to the
proxy, so nothing in here copies bytes and the agent's only listener-free way
out is that one address.

Usage: inner.py PORT CHANNEL_FD -- COMMAND [ARG...]
"""

import os
import signal
import socket
import struct
import sys

# Ignored by `firewall run` for bwrap (so a terminal's Ctrl-C does not kill the sandbox
# under the agent); the agent gets the defaults back.
RESET_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def main(argv: list[str]) -> int:
    port, channel_fd, command = int(argv[1]), int(argv[2]), argv[4:]
    channel = socket.socket(fileno=channel_fd)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(socket.SOMAXCONN)
    credentials = struct.pack("3i", os.getpid(), os.getuid(), os.getgid())
    channel.sendmsg(
        [b"L"],
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", listener.fileno())),
         (socket.SOL_SOCKET, socket.SCM_CREDENTIALS, credentials)],
    )
    listener.close()
    channel.close()
    for signum in RESET_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    try:
        os.execvp(command[0], command)
    except FileNotFoundError:
        print(f"error: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"error: command not executable: {command[0]}", file=sys.stderr)
        return 126
    except OSError as exc:
        print(f"error: cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 126


if __name__ == "__main__":
    sys.exit(main(sys.argv))
