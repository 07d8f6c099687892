"""The workers of the platform: one folder a worker; they talk only through subjects."""
