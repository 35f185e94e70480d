"""Charging sessions: the list at /sessions and its CSV at /sessions.csv."""
