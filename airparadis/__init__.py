"""Composition root of the platform: the `airparadis` command and the process wiring."""
