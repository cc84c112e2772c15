"""Maillon application service: links rooms and dossiers, relays mail (see BRIEF)."""
