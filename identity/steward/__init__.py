"""Steward actions: people overriding what the rules decided, with an audit trail."""
