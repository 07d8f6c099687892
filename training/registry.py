"""Register logged models and move the aliases serving follows (champion, previous, challenger).

Loading for scoring lives in shared/models.py, since services import only shared.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import mlflow

from shared.models import (
    CHAMPION,
    PREVIOUS,
    ModelVersionInfo,
    get_alias,
    get_version,
    registry_client,
)
from training.model import mlflow_at

logger = logging.getLogger(__name__)

# Aliases whose former holder is kept under a second alias, so a promotion can be undone.
_PREVIOUS_ALIAS = {CHAMPION: PREVIOUS}


def register_version(
    tracking_uri: str, model_uri: str, model_name: str, tags: Mapping[str, str]
) -> ModelVersionInfo:
    """Register the logged model at model_uri as a new version of model_name, with tags."""
    with mlflow_at(tracking_uri):
        version = mlflow.register_model(model_uri, model_name, tags=dict(tags))
    logger.info("registered %s version %s from %s", model_name, version.version, model_uri)
    return get_version(tracking_uri, model_name, str(version.version))


def promote(
    tracking_uri: str, model_name: str, version: str, alias: str = CHAMPION
) -> ModelVersionInfo:
    """Give `version` the alias; the former champion keeps the alias `previous`.

    Promoting the version that already holds the alias changes nothing.
    """
    get_version(tracking_uri, model_name, version)  # ModelNotFoundError when there is no such one
    client = registry_client(tracking_uri)
    former = get_alias(tracking_uri, model_name, alias)
    if former is not None and former.version == str(version):
        return former
    previous_alias = _PREVIOUS_ALIAS.get(alias)
    if former is not None and previous_alias is not None:
        client.set_registered_model_alias(model_name, previous_alias, former.version)
    client.set_registered_model_alias(model_name, alias, str(version))
    logger.info(
        "%s version %s is now %s (was version %s)",
        model_name,
        version,
        alias,
        former.version if former else None,
    )
    return get_version(tracking_uri, model_name, str(version))
