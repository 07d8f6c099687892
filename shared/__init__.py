"""Code shared by the services and training: settings, messages, the bus, storage, models.

Two MLflow defaults are turned off here, before anything imports MLflow, unless the user set them
otherwise: its usage reports over the network (a self-hosted platform sends nothing out; on a box
without a route out its telemetry thread's lookups only cost time, and one crashed the process
inside getaddrinfo during a test), and its own log handler (its lines go through the platform's
one log format instead, shared/logs.py)."""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
