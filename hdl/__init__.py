"""Amaranth components of the core."""
