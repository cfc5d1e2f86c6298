"""The data stage: one schema, loaders with validation, stats and splits."""

from fusionrec.data.schema import Dataset, IdMap, Interactions, ItemColumns, UserColumns
from fusionrec.data.splits import Split, split_dataset, split_from_files
from fusionrec.data.validate import ValidationIssue, ValidationReport

__all__ = [
    "Dataset",
    "IdMap",
    "Interactions",
    "ItemColumns",
    "Split",
    "UserColumns",
    "ValidationIssue",
    "ValidationReport",
    "split_dataset",
    "split_from_files",
]
