"""Try to reach a Unix socket outside the sandbox (a stand-in for /var/run/docker.sock), and do the
benign things a process does with Unix sockets and processes; write what happened as JSON.

    python unix_escape.py OUT SOCKET_PATH UPSTREAM_URL

Each attempt records ok, error (with the errno's name), and seconds. Standard library only (also run
by an interpreter without the project's packages, as an unprivileged user).
"""

import asyncio
import concurrent.futures
import ctypes
import errno
import json
import multiprocessing
import os
import platform
import socket
import sys
import time
import urllib.request

out, path, upstream = sys.argv[1], sys.argv[2], sys.argv[3]
TIMEOUT = 3.0
SOCKET_NR = {"x86_64": 41, "aarch64": 198}.get(platform.machine())
IO_URING_SETUP = 425
results = {}


def attempt(name, action):
    started = time.monotonic()
    try:
        detail = action()
        results[name] = {"ok": True, "detail": detail, "seconds": time.monotonic() - started}
    except Exception as exc:  # every failure is a result here
        code = errno.errorcode.get(getattr(exc, "errno", None) or 0, "")
        error = f"{type(exc).__name__}: {code} {exc}"
        results[name] = {"ok": False, "error": error, "seconds": time.monotonic() - started}


def connect(kind):
    def go():
        with socket.socket(socket.AF_UNIX, kind) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(path)
            sock.sendall(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")
            return sock.recv(4096).decode(errors="replace")

    return go


def raw_syscall(number, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(ctypes.c_long(number), *(ctypes.c_ulong(arg) for arg in args))
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    os.close(result)
    return "made"


def unix_with_high_bits():
    """socket(AF_UNIX) with garbage in the upper half of the first argument: the kernel reads an int."""
    return raw_syscall(SOCKET_NR, (1 << 32) | socket.AF_UNIX, socket.SOCK_STREAM, 0)


def io_uring():
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    return raw_syscall(IO_URING_SETUP, 4, ctypes.addressof(params))


def socketpair(kind):
    def go():
        left, right = socket.socketpair(socket.AF_UNIX, kind)
        with left, right:
            left.send(b"ping")
            return right.recv(16).decode()

    return go


def square(number):
    return number * number


def pool(method):
    def go():
        with multiprocessing.get_context(method).Pool(2) as workers:
            return sum(workers.map(square, range(10)))

    return go


def executor():
    with concurrent.futures.ProcessPoolExecutor(2) as workers:
        return sum(workers.map(square, range(10)))


def asyncio_subprocess():
    async def go():
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('child')", stdout=asyncio.subprocess.PIPE
        )
        output, _ = await child.communicate()
        return output.decode().strip()

    return asyncio.run(go())


def through_proxy():
    with urllib.request.urlopen(f"{upstream}/v1/models", timeout=10) as answer:
        return answer.status


if __name__ == "__main__":
    attempt("unix_stream", connect(socket.SOCK_STREAM))
    attempt("unix_dgram", connect(socket.SOCK_DGRAM))
    attempt("unix_seqpacket", connect(socket.SOCK_SEQPACKET))
    if SOCKET_NR is not None:
        attempt("unix_high_bits", unix_with_high_bits)
    attempt("io_uring", io_uring)
    attempt("socketpair_stream", socketpair(socket.SOCK_STREAM))
    attempt("socketpair_dgram", socketpair(socket.SOCK_DGRAM))
    attempt("pool_fork", pool("fork"))
    attempt("pool_spawn", pool("spawn"))
    attempt("process_pool_executor", executor)
    attempt("asyncio_subprocess", asyncio_subprocess)
    attempt("https_through_proxy", through_proxy)
    with open(out, "w") as file:
        json.dump(results, file)
