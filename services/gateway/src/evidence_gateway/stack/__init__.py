"""The one-command local stack behind ``evidence-stack`` (``make run``)."""
