"""Retrieval quality of a bundle on a BEIR collection, at the precisions the service searches."""
