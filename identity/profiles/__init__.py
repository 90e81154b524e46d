"""Profiles: one materialized view per identity, its traits chosen by precedence rules."""
