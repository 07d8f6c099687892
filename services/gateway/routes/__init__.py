"""One APIRouter per resource of the HTTP API."""
