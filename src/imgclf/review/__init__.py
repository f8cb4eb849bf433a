"""What a reviewer reads: scores, previews, the embedding view, the comparison of two revisions,
the pull-request report, the results table."""
