"""Privacy: forgetting a person, exporting everything held about one, the retention purge."""
