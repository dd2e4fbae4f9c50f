"""A listening socket made inside another process's network namespace, handed back to this process.

A forked child joins the sandbox's user namespace (which its owner, this user, may
join) and then its network namespace, binds the address there and sends the socket
back over a socket pair (SCM_RIGHTS); it copies no bytes and exits at once. The
socket stays in the sandbox's namespace: connections the agent makes to that address
are accepted out here. No program runs inside the sandbox for this (a Python helper
in there cost 30-90 ms of start-up per run).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import time
import warnings

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
BIND_WAIT = 2.0  # bwrap brings the sandbox's loopback up while it sets up; 127.0.0.1 exists then


class NamespaceError(Exception):
    pass


def listen_in(pid: int, port: int) -> socket.socket:
    """A socket listening on 127.0.0.1:`port` in the network namespace of process `pid`."""
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls into it
    try:
        user_ns = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        net_ns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NamespaceError(f"cannot open the sandbox's namespaces: {exc.strerror}") from exc
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with warnings.catch_warnings():
            # `firewall run` has threads (the approval hint): the child touches no lock they may
            # hold; it calls setns, socket, bind, listen, sendmsg and _exit, nothing else.
            warnings.simplefilter("ignore", DeprecationWarning)
            child = os.fork()
        if child == 0:  # pragma: no cover (runs in the forked child)
            ours.close()
            os._exit(_bind_and_send(libc, user_ns, net_ns, port, theirs))
        theirs.close()
        ours.settimeout(BIND_WAIT + 3)
        try:
            message, fds, _, _ = socket.recv_fds(ours, 64, 1)
        except OSError:
            message, fds = b"", []
        _, status = os.waitpid(child, 0)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            why = message.decode(errors="replace") or f"exit status {status}"
            raise NamespaceError(f"cannot listen on 127.0.0.1:{port} in the sandbox: {why}")
        return socket.socket(fileno=fds[0])
    finally:
        ours.close()
        theirs.close()
        os.close(user_ns)
        os.close(net_ns)


def _bind_and_send(libc, user_ns: int, net_ns: int, port: int, channel: socket.socket) -> int:  # pragma: no cover
    try:
        for fd, kind in ((user_ns, CLONE_NEWUSER), (net_ns, CLONE_NEWNET)):
            if libc.setns(fd, kind) != 0:
                raise OSError(ctypes.get_errno(), "setns: " + os.strerror(ctypes.get_errno()))
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + BIND_WAIT
        while True:
            try:
                listener.bind(("127.0.0.1", port))
                break
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)
        listener.listen(socket.SOMAXCONN)
        socket.send_fds(channel, [b"L"], [listener.fileno()])
        return 0
    except OSError as exc:
        try:
            channel.sendall(str(exc).encode())
        except OSError:
            pass
        return 1
