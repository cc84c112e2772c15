"""Synapse modules of Maillon, loaded from ``modules:`` in homeserver.yaml."""
