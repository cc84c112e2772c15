"""Maillon coordination bot (@coordination): in-chat commands in encrypted rooms."""
