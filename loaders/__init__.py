"""Outside formats turned into identity.model values; never speaks Cypher."""
