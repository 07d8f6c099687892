"""Infer worker: scores preprocessed tweets in micro-batches with the champion model."""
