"""Maillon dossier service: the source of truth for coordination data (see BRIEF)."""
