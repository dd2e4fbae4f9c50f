"""Names a package loads on first use (PEP 562): `__getattr__ = lazy_names(__name__, WHERE)`.

A module that needs one part of a package (the audit writer's child process, `firewall run`
reading a compiled policy) then does not load the rest.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, where: dict[str, str]) -> Callable[[str], object]:
    """The module `__getattr__` of `package`: `name` comes from its module `where[name]`, imported
    when first asked for, then kept in the package like any other name."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    return __getattr__
