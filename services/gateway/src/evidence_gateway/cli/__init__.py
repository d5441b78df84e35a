"""Command-line tools: ``evidence-score`` and ``evidence-stack``."""
