"""One module per dashboard section; each renders itself from a ``Runtime``."""
