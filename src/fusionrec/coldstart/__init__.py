"""Cold start for users: seed items, free text and profile attributes, for any fitted model
(cold items are the models' own capability: ``score_items`` and content-mapped embeddings)."""

from fusionrec.coldstart.profile import ProfilePrior
from fusionrec.coldstart.text_query import TextRetriever, load_matching_text_encoder
from fusionrec.coldstart.users import ColdUserRecommender, UserQuery

__all__ = ["ColdUserRecommender", "ProfilePrior", "TextRetriever", "UserQuery", "load_matching_text_encoder"]
