"""The sandbox `firewall run` starts an agent in: its own namespaces, the proxy its only way out."""
