"""Per-dimension int8 ranges of a bundle, computed on a calibration corpus."""
