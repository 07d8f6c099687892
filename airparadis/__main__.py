"""`python -m airparadis` is the `airparadis` command."""

from airparadis.cli import app

app()
