"""On-disk state: the state folder, its SQLite database, the vault."""
