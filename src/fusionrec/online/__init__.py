"""Real-time updates: live histories, fold-in of new feedback, new items scorable from content."""
