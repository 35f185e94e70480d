"""Tariffs per site (admin): what charging costs, and from when."""
