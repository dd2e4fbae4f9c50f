"""The vault's exceptions. Every message names the file or entry it is about."""

from __future__ import annotations


class VaultError(Exception):
    """The vault cannot be read, unlocked or changed as asked."""


class MissingSecret(VaultError):
    """No entry of that name in the vault."""


class InvalidValue(VaultError):
    """A secret value that does not have the shape its provider uses.

    The message never contains the value, only its first characters.
    """


class DamagedVault(VaultError):
    """The vault file cannot be parsed or does not authenticate: it was modified or damaged."""
