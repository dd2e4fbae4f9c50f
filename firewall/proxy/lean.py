"""Loading mitmproxy without the modules of its default addons (memory and start-up).

`mitmproxy/addons/__init__.py` imports every one of mitmproxy's ~35 default addons, to define
`default_addons()` for its own tools; among them the onboarding app with Flask, Werkzeug,
Jinja2 and Click, the HAR and export writers and the script loader. Python runs a package's
`__init__` before any module in it, and `mitmproxy.master` imports `mitmproxy.addons.termlog`,
so every embedded mitmproxy loaded all of them, while the firewall's master
(firewall/proxy/master.py) uses seven.

`skip_default_addons()` registers the package `mitmproxy.addons` without running its
`__init__`: its modules import as usual, one by one. `default_addons` (which only mitmproxy's
own tools read, such as `DumpMaster`) still works: its first read runs the real `__init__`
then. Call it before anything imports mitmproxy's master or an addon of mitmproxy's.
"""

from __future__ import annotations

import importlib.util
import sys

PACKAGE = "mitmproxy.addons"


def skip_default_addons() -> None:
    if PACKAGE in sys.modules:  # already imported (whole, or by an earlier call)
        return
    import mitmproxy

    spec = importlib.util.find_spec(PACKAGE)
    assert spec is not None and spec.loader is not None, "mitmproxy has no addons package"
    package = importlib.util.module_from_spec(spec)  # __path__ and __spec__ set; __init__ not run
    loaded = False

    def __getattr__(name: str) -> object:
        # Only the names the real __init__ defines itself; a submodule's name must raise, so
        # that `from mitmproxy.addons import block` imports the submodule as usual.
        nonlocal loaded
        if name != "default_addons" or loaded:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}")
        loaded = True
        spec.loader.exec_module(package)  # type: ignore[union-attr]
        return package.__dict__[name]

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[PACKAGE] = package
    mitmproxy.addons = package  # type: ignore[attr-defined]  (as importing it would set)
