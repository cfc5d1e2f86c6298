"""Real-time updates: live histories, fold-in of new feedback, new items scorable from content."""

from fusionrec.online.live import LiveRecommender, UpdateStats

__all__ = ["LiveRecommender", "UpdateStats"]
