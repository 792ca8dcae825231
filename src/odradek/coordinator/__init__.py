"""Coordinators: groups (and later transactions), kept as records in internal topics."""
