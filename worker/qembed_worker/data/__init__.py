"""Inputs read from disk: calibration corpora, BEIR folders, training pairs and text files."""
