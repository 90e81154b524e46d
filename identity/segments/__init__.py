"""Segments (marketers' audiences by rule): the language, and the service that keeps their
memberships. Segment.com events are :mod:`loaders.segment_events`; third-party interest
segments are *DMP segments*."""
