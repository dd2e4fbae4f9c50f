"""Files a run writes for clients that take their settings from a file rather than the environment.

Debian's wget reads no CA variable: only `ca_certificate` in its wgetrc (`WGETRC`, else
`~/.wgetrc`; `/etc/wgetrc` is read before either). The run's wgetrc is the user's own, with
what the run needs appended (a later setting wins in a wgetrc), so their other settings stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from firewall.state.home import write_private_file

NODE_PRELOAD = Path(__file__).with_name("node_preload.js")


def user_wgetrc(parent: Mapping[str, str]) -> Path | None:
    """The wgetrc wget would read besides /etc/wgetrc: $WGETRC, else ~/.wgetrc."""
    if configured := parent.get("WGETRC"):
        return Path(configured)
    if home := parent.get("HOME"):
        return Path(home) / ".wgetrc"
    return None


def wgetrc_text(own: str, bundle: Path, proxy: str) -> str:
    """The user's wgetrc text followed by the run's settings (a proxy setting in it, or
    `use_proxy = off`, would send wget around the proxy)."""
    lines = [own.rstrip("\n")] if own.strip() else []
    lines += [
        "# added by `firewall run`: trust the firewall's CA, use its proxy",
        f"ca_certificate = {bundle}",
        "use_proxy = on",
        f"https_proxy = {proxy}",
        f"http_proxy = {proxy}",
        "no_proxy = ",
    ]
    return "\n".join(lines) + "\n"


def write_wgetrc(path: Path, parent: Mapping[str, str], bundle: Path, proxy: str) -> Path:
    """Write the run's wgetrc (owner-only: it holds the run's proxy token, as the environment does)."""
    own = ""
    if (source := user_wgetrc(parent)) is not None:
        try:
            own = source.read_text(errors="replace")
        except OSError:
            own = ""  # none, or unreadable: wget would not have read it either
    write_private_file(path, wgetrc_text(own, bundle, proxy).encode())
    return path
