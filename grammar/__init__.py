"""The policy grammar, shipped inside the wheel as firewall.grammar."""
