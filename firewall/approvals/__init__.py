"""Holding requests for a person's approval: the pending/answer/grant store, the proxy's
broker, the terminal prompt, and what the person is shown of a request."""
