"""fusionrec: multimodal recommendation from what items are and who interacted with them."""

__version__ = "0.1.0"
