"""The intercepting proxy: mitmproxy embedded with our thin addons.

mitmproxy is imported only in this package. The addons ask the decision
engine (`firewall.policy.decide`) and apply what it says; they hold no policy
logic of their own.
"""
