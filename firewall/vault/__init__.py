"""The encrypted vault of real credentials, and the catalog of providers they belong to.

vault = Vault.open(open_home())
vault.add("openai", value, provider="openai")
vault.get("openai")          # decrypted in memory only
"""

from firewall.vault.crypto import PASSPHRASE_ENV, KeyMode, KeySource, MasterKey, ScryptParams
from firewall.vault.errors import InvalidValue, MissingSecret, VaultError
from firewall.vault.providers import PROVIDERS, Kind, Provider, get_provider, recognise, validate_value
from firewall.vault.store import EntryInfo, Vault, check_name

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
