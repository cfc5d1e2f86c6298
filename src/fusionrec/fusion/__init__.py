"""Fusion stage: models trained over several modalities' features (e.g. a learned text-image space)."""
