"""`firewall demo`: the whole firewall, offline, in a temporary state folder."""
