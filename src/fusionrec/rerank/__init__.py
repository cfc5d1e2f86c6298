"""Diversity re-ranking of a model's candidate lists (MMR, fast greedy DPP) over an item feature space."""
