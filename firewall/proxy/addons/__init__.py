"""One mitmproxy addon per concern, added to the master in the order of `server.ADDON_ORDER`."""
