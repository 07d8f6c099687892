"""Code shared by the services and training: settings, messages, the bus, storage, models.

MLflow reports usage to its maintainers over the network unless told not to; a self-hosted
platform sends nothing out (and, on a box without a route out, its telemetry thread's lookups
only cost time; one crashed the process inside getaddrinfo during a test). Off unless the user
set it otherwise."""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
