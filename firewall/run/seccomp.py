"""The sandbox's system call filter: a classic BPF program that bwrap loads (`--seccomp FD`) into
every process of the sandbox, its init included, just before the command starts.

It refuses, with EPERM:

- `socket(AF_UNIX, ...)`: a network namespace cuts off abstract Unix sockets but not socket files,
  and the user can reach many (a Docker or Podman API, a database, a session bus, a key agent), each
  a way out of the sandbox. `socketpair()` stays allowed (event loops, subprocess plumbing and
  multiprocessing use it; a connected pair reaches nothing outside), as in Anthropic's
  sandbox-runtime. The relay to the proxy is a TCP listener made in the sandbox's namespace from
  outside (netns.py), so nothing of the run's own needs a Unix socket inside.
- `io_uring_setup`, `io_uring_enter`, `io_uring_register`: an io_uring makes sockets and connects
  them without the system calls this filter sees (IORING_OP_SOCKET, IORING_OP_CONNECT), so it would
  undo the rule above; programs fall back to plain system calls when it is refused (as in Docker's
  default profile and Codex's sandbox).

A system call made through another ABI than the machine's own (32-bit `int 0x80` on x86_64, x32,
arm32 on aarch64) kills the process: their numbers differ (on i386, `socketcall` multiplexes every
socket call behind a pointer the filter cannot read), so they are refused as a whole. `ptrace` is
not filtered: every process the agent can see is in the sandbox under this same filter (PID
namespace), and kernels since 4.8 check a traced system call again after the tracer changes it.

Only the low 32 bits of `socket`'s first argument are compared: the kernel reads it as an int, so
`0x1_0000_0001` is AF_UNIX too. Standard library only, like the rest of the sandbox's core.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

# <linux/bpf_common.h>, <linux/seccomp.h>, <linux/audit.h>
_LD_W_ABS = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x05 | 0x30 | 0x00  # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06 | 0x00  # BPF_RET | BPF_K
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
EPERM = 1
AF_UNIX = 1
X32_SYSCALL_BIT = 0x40000000

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
_NR, _ARCH, _ARG0_LOW = 0, 4, 16  # args[0]'s low word on a little-endian machine


@dataclass(frozen=True)
class Arch:
    audit: int  # AUDIT_ARCH_*
    socket: int
    io_uring: tuple[int, int, int]  # setup, enter, register
    x32: bool = False  # numbers with X32_SYSCALL_BIT set are another ABI under the same arch value


ARCHES = {
    "x86_64": Arch(0xC000003E, 41, (425, 426, 427), x32=True),
    "aarch64": Arch(0xC00000B7, 198, (425, 426, 427)),
}


class UnsupportedArch(Exception):
    pass


def program(machine: str | None = None) -> bytes:
    """The filter for `machine` (default: this one), as bwrap's --seccomp reads it: struct
    sock_filter[] in native byte order."""
    name = machine or os.uname().machine
    arch = ARCHES.get(name)
    if arch is None:
        raise UnsupportedArch(
            f"the sandbox's system call filter knows {', '.join(ARCHES)}, not {name}; "
            "run without isolation: `firewall run --no-isolate -- ...`"
        )
    return b"".join(struct.pack("=HBBI", *insn) for insn in _assemble(_source(arch)))


def _source(arch: Arch) -> list[tuple]:
    """(label,) marks a place; (code, k, jump-if-true, jump-if-false) with labels or None for "next"."""
    checks = [(_JGE_K, X32_SYSCALL_BIT, "kill", None)] if arch.x32 else []
    return [
        (_LD_W_ABS, _ARCH, None, None),
        (_JEQ_K, arch.audit, None, "kill"),
        (_LD_W_ABS, _NR, None, None),
        *checks,
        (_JEQ_K, arch.socket, "domain", None),
        *((_JEQ_K, number, "deny", None) for number in arch.io_uring),
        (_RET_K, RET_ALLOW, None, None),
        ("domain",),
        (_LD_W_ABS, _ARG0_LOW, None, None),
        (_JEQ_K, AF_UNIX, "deny", "allow"),
        ("allow",),
        (_RET_K, RET_ALLOW, None, None),
        ("deny",),
        (_RET_K, RET_ERRNO | EPERM, None, None),
        ("kill",),
        (_RET_K, RET_KILL_PROCESS, None, None),
    ]


def _assemble(source: list[tuple]) -> list[tuple[int, int, int, int]]:
    places, index = {}, 0
    for line in source:
        if len(line) == 1:
            places[line[0]] = index
        else:
            index += 1
    assembled = []
    for line in source:
        if len(line) == 1:
            continue
        code, k, if_true, if_false = line
        here = len(assembled) + 1  # jumps count from the next instruction

        def offset(label, here=here):
            return 0 if label is None else places[label] - here

        assembled.append((code, offset(if_true), offset(if_false), k))
    return assembled
