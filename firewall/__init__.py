"""agent-firewall: a policy-as-code egress firewall for AI agents."""

__version__ = "0.1.0"
