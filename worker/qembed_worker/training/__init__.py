"""The training kit head QAT and weight QAT share: crops, batches, distillation losses, teachers."""
