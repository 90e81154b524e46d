"""Audience exports: a segment's identifiers, consent-filtered and hashed per destination."""
