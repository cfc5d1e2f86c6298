"""Shared training mechanics: the trainer, negative sampling, losses and graph helpers."""

from fusionrec.training.trainer import EpochRecord, Trainable, Trainer, TrainHistory

__all__ = ["EpochRecord", "TrainHistory", "Trainable", "Trainer"]
