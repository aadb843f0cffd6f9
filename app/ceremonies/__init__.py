"""The ceremonies, one module each, over the quorum collector, the store and the PGP face.

``quorum`` collects a quorum's shares (the rules for taking a share live there
alone); ``init``, ``generate``, ``adoption`` and ``custody`` are the
ceremonies; ``oversight`` is the registry and health; ``common`` holds what
they share. They hold no lock and no attempt: ``app.service`` does, and calls
them under its lock. Nothing here imports Flask or ``app.service``.
"""
