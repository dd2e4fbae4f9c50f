"""One `firewall run`: its session, the proxy processes it starts, and the sandbox it starts an
agent in (its own namespaces, the proxy its only way out)."""
