"""CLI verbs of the data stage: stats, split (ingest/validate live in cli/ingest.py)."""
