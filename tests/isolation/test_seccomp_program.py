"""The system call filter's program, read back by a small classic-BPF interpreter: what it answers for
each architecture, system call and first argument. Real runs of it are in test_unix_sockets.py."""

from __future__ import annotations

import struct

import pytest

from firewall.run import seccomp

ALLOW, DENY, KILL = seccomp.RET_ALLOW, seccomp.RET_ERRNO | seccomp.EPERM, seccomp.RET_KILL_PROCESS
X86_64, AARCH64, I386, ARM = 0xC000003E, 0xC00000B7, 0x40000003, 0x40000028
AF_INET, AF_NETLINK = 2, 16


def _run(program: bytes, arch: int, nr: int, arg0: int = 0) -> int:
    """What the kernel would do with this filter for one system call (struct seccomp_data)."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, 0, 0)
    insns = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    accumulator, pc = 0, 0
    for _ in range(len(insns)):  # no backward jumps in cBPF: bounded
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            accumulator = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35):
            taken = accumulator == k if code == 0x15 else accumulator >= k
            pc += 1 + (jt if taken else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
    raise AssertionError("fell off the end")


@pytest.mark.parametrize(
    ("machine", "arch", "socket_nr"),
    [("x86_64", X86_64, 41), ("aarch64", AARCH64, 198)],
)
def test_unix_sockets_and_io_uring_are_refused_and_the_rest_allowed(machine, arch, socket_nr):
    program = seccomp.program(machine)
    assert len(program) % 8 == 0
    assert _run(program, arch, socket_nr, seccomp.AF_UNIX) == DENY
    assert _run(program, arch, socket_nr, (1 << 32) | seccomp.AF_UNIX) == DENY  # the kernel reads an int
    for number in (425, 426, 427):  # io_uring_setup, _enter, _register
        assert _run(program, arch, number) == DENY
    # The controls: other families, other calls (socketpair, connect, read) go through.
    assert _run(program, arch, socket_nr, AF_INET) == ALLOW
    assert _run(program, arch, socket_nr, AF_NETLINK) == ALLOW
    assert _run(program, arch, socket_nr, (1 << 32) | AF_INET) == ALLOW
    for number in (0, 1, 42, 53, 199, 203, 424, 428):
        assert _run(program, arch, number, seccomp.AF_UNIX) == ALLOW


def test_another_abi_is_killed():
    """32-bit calls (int 0x80: i386's socketcall hides its arguments behind a pointer) and x32's
    numbers get past a rule written for x86_64's numbers: they kill the process."""
    program = seccomp.program("x86_64")
    assert _run(program, I386, 102, 1) == KILL  # socketcall
    assert _run(program, I386, 359, seccomp.AF_UNIX) == KILL  # i386's socket
    assert _run(program, X86_64, seccomp.X32_SYSCALL_BIT | 41, seccomp.AF_UNIX) == KILL
    assert _run(seccomp.program("aarch64"), ARM, 281, seccomp.AF_UNIX) == KILL
    assert _run(program, X86_64, 0) == ALLOW  # the control: the machine's own ABI


def test_an_unknown_machine_fails_closed_with_the_way_out():
    with pytest.raises(seccomp.UnsupportedArch, match="--no-isolate"):
        seccomp.program("riscv64")
