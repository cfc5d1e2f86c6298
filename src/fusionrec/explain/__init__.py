"""Explanations per modality: leave-one-modality-out contributions, fuser weights, and evidence items."""
