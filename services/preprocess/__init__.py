"""Preprocess worker: validates and normalises submitted tweets and extracts their features."""
