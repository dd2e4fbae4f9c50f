"""The encrypted vault of real credentials, and the catalog of providers they belong to.

vault = Vault.open(open_home())
vault.add("openai", value, provider="openai")
vault.get("openai")          # decrypted in memory only

The names below load on first use (PEP 562): every command starts by taking a passphrase
handed over by pipe (`handoff`), which must not load the ciphers (cryptography) and the
providers' catalog when the command reads no vault.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firewall.vault.crypto import PASSPHRASE_ENV, KeyMode, KeySource, MasterKey, ScryptParams
    from firewall.vault.errors import InvalidValue, MissingSecret, VaultError
    from firewall.vault.providers import PROVIDERS, Kind, Provider, get_provider, recognise, validate_value
    from firewall.vault.store import EntryInfo, Vault, check_name

_WHERE = {
    "PASSPHRASE_ENV": "crypto",
    "KeyMode": "crypto",
    "KeySource": "crypto",
    "MasterKey": "crypto",
    "ScryptParams": "crypto",
    "InvalidValue": "errors",
    "MissingSecret": "errors",
    "VaultError": "errors",
    "PROVIDERS": "providers",
    "Kind": "providers",
    "Provider": "providers",
    "get_provider": "providers",
    "recognise": "providers",
    "validate_value": "providers",
    "EntryInfo": "store",
    "Vault": "store",
    "check_name": "store",
}

__all__ = [
    "PASSPHRASE_ENV",
    "PROVIDERS",
    "EntryInfo",
    "InvalidValue",
    "KeyMode",
    "KeySource",
    "Kind",
    "MasterKey",
    "MissingSecret",
    "Provider",
    "ScryptParams",
    "Vault",
    "VaultError",
    "check_name",
    "get_provider",
    "recognise",
    "validate_value",
]


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"firewall.vault.{module}"), name)
    globals()[name] = value
    return value
