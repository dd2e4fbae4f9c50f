"""The storage layer: the state folder, its SQLite database (one connect, every schema), policy
versions, agents' tokens, pids."""
