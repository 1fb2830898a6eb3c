"""Read-only inspection of a running profile: ``qt check`` (GO/NO-GO) and ``qt why SYMBOL``."""
