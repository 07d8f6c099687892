"""The model registry: one registered model in one MLflow registry, and the one way to read its
versions, aliases, thresholds, drift references and operating curves, to load a version for
scoring, to register versions, to keep the frozen holdout every promotion is judged on, and to
promote them (recording why, and announcing each promotion on the bus).

Services, training and the CLI hold a `Registry(tracking_uri, model_name)` (from the settings,
`Registry.of(settings)`) instead of threading the pair through their calls. Every call goes
through a client bound to this URI: no MLflow global state is touched or left behind.
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.artifacts
import mlflow.pyfunc
import nats.errors
import nats.js.errors
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from shared.drift import REFERENCE_ARTIFACT, DriftReferenceError, from_json, to_json
from shared.estimators.base import ModelLoadError, ModelNotFoundError
from shared.models import LoadedModel, SentimentModel
from shared.shift import OPERATING_CURVE_ARTIFACT, OperatingCurve

if TYPE_CHECKING:
    from shared.messages import ModelPromoted
    from shared.settings import Settings

log = logging.getLogger(__name__)

# Aliases serving follows.
CHAMPION = "champion"
PREVIOUS = "previous"
CHALLENGER = "challenger"
# Aliases whose former holder is kept under a second alias, so a promotion can be undone.
_PREVIOUS_ALIAS = {CHAMPION: PREVIOUS}

# Tags on a registered model version.
THRESHOLD_TAG = "threshold"
TARGET_PRECISION_TAG = "target_precision"
FAMILY_TAG = "family"
# The languages of the training data, comma-separated ISO 639-1 codes (shared/language.py).
LANGUAGES_TAG = "languages"
# What a version registered before the tag existed was trained on: Sentiment140, English.
DEFAULT_LANGUAGES = ("en",)
# Why a version was last given an alias (the promotion rule's reason, with its figures); the
# registered model also keeps it per alias, e.g. `champion_reason`.
PROMOTION_REASON_TAG = "promotion_reason"
CHAMPION_REASON_TAG = f"{CHAMPION}_reason"

# The frozen holdout: labelled tweets no version trains or validates on, kept as an artifact of a
# run of its own (in HOLDOUT_EXPERIMENT), named by a tag on the registered model.
HOLDOUT_EXPERIMENT = "airparadis-holdout"
HOLDOUT_ARTIFACT = "holdout.csv.gz"
HOLDOUT_RUN_TAG = "holdout_run_id"
HOLDOUT_SOURCE_PARAM = "source"

_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@contextmanager
def mlflow_at(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (runs, log_model) at tracking_uri, then restore what was there.

    MLflow keeps the URI in process globals and environment variables; both are put back, so a
    training call leaves no trace on the rest of the process.
    """
    saved_environment = {name: os.environ.get(name) for name in _URI_VARIABLES}
    saved_tracking = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]
        mlflow.set_registry_uri(saved_environment["MLFLOW_REGISTRY_URI"])  # type: ignore[arg-type]
        for name, value in saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass(frozen=True)
class ModelVersionInfo:
    """What the registry says about one version, without loading it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    threshold: float | None
    run_id: str | None
    tags: Mapping[str, str]

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages its training data was in."""
        return languages_of(self.tags)

    @classmethod
    def of(cls, version: ModelVersion) -> ModelVersionInfo:
        tags = dict(version.tags or {})
        threshold = tags.get(THRESHOLD_TAG)
        return cls(
            name=version.name,
            version=str(version.version),
            aliases=tuple(version.aliases or ()),
            threshold=float(threshold) if threshold is not None else None,
            run_id=version.run_id,
            tags=tags,
        )


def languages_of(tags: Mapping[str, str]) -> tuple[str, ...]:
    """A version's training languages from its tags (DEFAULT_LANGUAGES when it has none)."""
    recorded = tags.get(LANGUAGES_TAG, "")
    codes = tuple(code.strip() for code in recorded.split(",") if code.strip())
    return codes or DEFAULT_LANGUAGES


class HoldoutError(Exception):
    """The holdout cannot be read, written or used; the message says why."""


@dataclass(frozen=True, eq=False)
class Holdout:
    """Labelled tweets (columns `text`, `label` 0/1) every version is scored on alike, and where
    they come from; `run_id` is the run keeping them in the registry (None: not kept there)."""

    frame: pd.DataFrame
    source: str
    run_id: str | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame, source: str, run_id: str | None = None) -> Holdout:
        """The text and label columns of frame, checked; HoldoutError when they do not fit."""
        missing = {"text", "label"} - set(frame.columns)
        if missing:
            raise HoldoutError(
                f"a holdout needs the columns text and label; {source} lacks {missing}"
            )
        if frame.empty:
            raise HoldoutError(f"the holdout from {source} holds no tweet")
        labels = set(frame["label"].unique().tolist())
        if not labels <= {0, 1}:
            raise HoldoutError(f"holdout labels must be 0 or 1; {source} has {sorted(labels)}")
        tweets = pd.DataFrame(
            {"text": frame["text"].astype(str).to_numpy(), "label": frame["label"].astype(int)}
        )
        return cls(tweets.reset_index(drop=True), source, run_id)

    def __len__(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class Promotion:
    """A version given an alias, and where running workers were told of it."""

    version: ModelVersionInfo
    alias: str
    # The NATS URL models.promoted went to; None: not announced (no bus configured or reachable,
    # or the version already held the alias).
    announced_on: str | None
    # Aliases the version gave up with it: a challenger made champion is no longer the challenger.
    released: tuple[str, ...] = ()


@dataclass(frozen=True)
class AliasRemoved:
    """An alias no version holds any more, the version that held it, and where running workers
    were told (None: not announced)."""

    version: ModelVersionInfo
    alias: str
    announced_on: str | None


class AliasError(ValueError):
    """An alias that cannot be changed so; the message says why."""


@dataclass(frozen=True)
class Registry:
    """One registered model (`model_name`) in the registry at `tracking_uri`.

    Made from the platform's settings (`Registry.of`), it also announces promotions on the
    platform's bus (`bus`), so running workers follow them without restart.
    """

    tracking_uri: str
    model_name: str
    bus: Settings | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, settings: Settings) -> Registry:
        return cls(settings.tracking_uri, settings.model_name, bus=settings)

    @property
    def client(self) -> mlflow.MlflowClient:
        """A client bound to this registry, independent of MLflow's globals."""
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # --- Reading ---

    def version(self, version: str) -> ModelVersionInfo:
        """One version; ModelNotFoundError when the registry has no such one."""
        try:
            found = self.client.get_model_version(self.model_name, str(version))
        except MlflowException as error:
            if error.error_code in _NOT_FOUND_CODES:
                raise ModelNotFoundError(
                    f"no version {version} of model {self.model_name!r} at {self.tracking_uri}"
                ) from error
            raise
        return ModelVersionInfo.of(found)

    def alias(self, alias: str) -> ModelVersionInfo | None:
        """The version holding the alias, or None when none does (or there is no such model)."""
        try:
            found = self.client.get_model_version_by_alias(self.model_name, alias)
        except MlflowException as error:
            if error.error_code in _NOT_FOUND_CODES:
                return None
            raise
        return ModelVersionInfo.of(found)

    def champion(self) -> ModelVersionInfo | None:
        return self.alias(CHAMPION)

    def versions(self) -> list[ModelVersion]:
        """Every registered version, as MLflow describes them, with their aliases: MLflow's SQL
        store leaves them out of search results, so they are read from the registered model."""
        found = list(self.client.search_model_versions(f"name = '{self.model_name}'"))
        if found:
            held = self.client.get_registered_model(self.model_name).aliases or {}
            for version in found:
                version.aliases = sorted(
                    alias for alias, number in held.items() if str(number) == str(version.version)
                )
        return found

    def read_artifact(self, run_id: str, artifact_path: str) -> bytes:
        """The bytes of one file logged in a run (the split, the drift reference)."""
        with tempfile.TemporaryDirectory(prefix="airparadis-artifact-") as folder:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=artifact_path,
                dst_path=folder,
                tracking_uri=self.tracking_uri,
            )
            return Path(path).read_bytes()

    # --- Loading for scoring ---

    def load(self, version: str | None = None) -> LoadedModel:
        """Load a version (None: the champion) for scoring. By number, even for the champion,
        so the version reported is the one loaded if the alias moves meanwhile."""
        if version is None:
            champion = self.champion()
            if champion is None:
                raise ModelNotFoundError(
                    f"no version of model {self.model_name!r} holds the alias {CHAMPION!r} "
                    f"at {self.tracking_uri}"
                )
            version = champion.version
        else:
            self.version(version)
        return self._load(str(version))

    def _load(self, version: str) -> LoadedModel:
        # The estimator is read into memory by load_context, so the download can go right
        # after. The registry resolves the version to its storage URI here: a models:/ URI
        # would be resolved against MLflow's global tracking URI, not this one.
        storage_uri = self.client.get_model_version_download_uri(self.model_name, version)
        with tempfile.TemporaryDirectory(prefix="airparadis-model-") as download_dir:
            local_path = mlflow.artifacts.download_artifacts(
                artifact_uri=storage_uri,
                dst_path=download_dir,
                tracking_uri=self.tracking_uri,
                registry_uri=self.tracking_uri,
            )
            try:
                python_model = mlflow.pyfunc.load_model(local_path).unwrap_python_model()
            except MlflowException as error:
                raise ModelLoadError(
                    f"cannot load version {version} of model {self.model_name!r}: {error}"
                ) from error
        if not isinstance(python_model, SentimentModel):
            raise ModelLoadError(
                f"version {version} of model {self.model_name!r} is a "
                f"{type(python_model).__name__}, not an Air Paradis SentimentModel"
            )
        languages = languages_of(self.client.get_model_version(self.model_name, version).tags or {})
        return LoadedModel(self.model_name, version, python_model, languages=languages)

    # --- Drift references and operating curves, logged with each version ---

    def _logged(self, version: str, artifact: str) -> bytes | None:
        """A JSON artifact of a version's run, or None when the run has none."""
        info = self.version(version)
        if info.run_id is None:
            return None
        try:
            logged = {item.path for item in self.client.list_artifacts(info.run_id)}
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise DriftReferenceError(
                    f"the run of version {version} ({info.run_id}) no longer exists"
                ) from error
            raise
        return self.read_artifact(info.run_id, artifact) if artifact in logged else None

    def _log(self, version: str, artifact: str, text: str) -> None:
        """Log a JSON artifact into the run of a registered version (replacing an earlier one)."""
        info = self.version(version)
        if info.run_id is None:
            raise DriftReferenceError(
                f"version {version} of {self.model_name!r} has no run to log into"
            )
        with tempfile.TemporaryDirectory(prefix="airparadis-reference-") as folder:
            path = Path(folder) / artifact
            path.write_text(text, encoding="utf-8")
            self.client.log_artifact(info.run_id, str(path))

    def reference(self, version: str) -> list[dict[str, Any]] | None:
        """The drift reference logged with a version, or None when its run has none (a
        version trained before references existed: `airparadis models reference` makes one)."""
        logged = self._logged(version, REFERENCE_ARTIFACT)
        if logged is None:
            return None
        rows = from_json(logged)
        # A reference is keyed by the version it was built for; a copied artifact must not
        # pose as another version's.
        if any(row["model_version"] != str(version) for row in rows):
            raise DriftReferenceError(
                f"the reference logged with version {version} belongs to another version"
            )
        return rows

    def log_reference(self, version: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self._log(version, REFERENCE_ARTIFACT, to_json(rows))

    def operating_curve(self, version: str) -> OperatingCurve | None:
        """The operating curve logged with a version (rates on its test split), or None when
        its run has none (trained before calibration: `airparadis models reference`)."""
        logged = self._logged(version, OPERATING_CURVE_ARTIFACT)
        return None if logged is None else OperatingCurve.from_json(logged)

    def log_operating_curve(self, version: str, curve: OperatingCurve) -> None:
        self._log(version, OPERATING_CURVE_ARTIFACT, curve.to_json())

    # --- The frozen holdout every promotion is judged on ---

    def holdout(self) -> Holdout | None:
        """The registry's holdout, or None when no training has set one yet (or no such model).

        HoldoutError when the registered model names a holdout run that cannot be read.
        """
        try:
            model = self.client.get_registered_model(self.model_name)
        except MlflowException as error:
            if error.error_code in _NOT_FOUND_CODES:
                return None
            raise
        run_id = (model.tags or {}).get(HOLDOUT_RUN_TAG)
        if not run_id:
            return None
        try:
            run = self.client.get_run(run_id)
            data = self.read_artifact(run_id, HOLDOUT_ARTIFACT)
        except (MlflowException, OSError) as error:
            raise HoldoutError(
                f"the holdout of model {self.model_name!r} (run {run_id}, registered model tag "
                f"{HOLDOUT_RUN_TAG}) cannot be read: {error}"
            ) from error
        # Every text as written: no "NA" or "null" tweet read back as a missing value.
        frame = pd.read_csv(
            io.BytesIO(data), compression="gzip", dtype={"text": str}, keep_default_na=False
        )
        source = run.data.params.get(HOLDOUT_SOURCE_PARAM, f"run {run_id}")
        return Holdout.of(frame, source, run_id)

    def set_holdout(self, frame: pd.DataFrame, source: str, *, experiment_id: str) -> Holdout:
        """Keep frame (columns text, label 0/1) as the registry's holdout, replacing any earlier
        one: `holdout.csv.gz` in a new run of experiment_id (HOLDOUT_EXPERIMENT, made by the
        caller where artifacts go), named by the registered model's tag `holdout_run_id`."""
        holdout = Holdout.of(frame, source)
        client = self.client
        try:
            client.get_registered_model(self.model_name)
        except MlflowException as error:
            if error.error_code not in _NOT_FOUND_CODES:
                raise
            client.create_registered_model(self.model_name)
        run_id = client.create_run(
            experiment_id, run_name=f"holdout-{self.model_name}", tags={"model": self.model_name}
        ).info.run_id
        try:
            client.log_param(run_id, HOLDOUT_SOURCE_PARAM, source)
            client.log_param(run_id, "tweets", len(holdout))
            client.log_param(run_id, "positives", int(holdout.frame["label"].sum()))
            with tempfile.TemporaryDirectory(prefix="airparadis-holdout-") as folder:
                path = Path(folder) / HOLDOUT_ARTIFACT
                # Every text quoted, so a carriage return or a tab inside a tweet reads back.
                holdout.frame.to_csv(
                    path, index=False, compression="gzip", quoting=csv.QUOTE_NONNUMERIC
                )
                client.log_artifact(run_id, str(path))
        except BaseException:
            client.set_terminated(run_id, status="FAILED")
            raise
        client.set_terminated(run_id)
        client.set_registered_model_tag(self.model_name, HOLDOUT_RUN_TAG, run_id)
        log.info("%s holds a holdout of %d tweets from %s", self.model_name, len(holdout), source)
        return Holdout(holdout.frame, source, run_id)

    # --- Writing ---

    def register(self, model_uri: str, tags: Mapping[str, str]) -> ModelVersionInfo:
        """Register the logged model at model_uri as a new version, with tags."""
        from mlflow.utils import logging_utils

        # MLflow prints "Successfully registered model …" on stderr past any log format; the
        # line below says it in the platform's.
        logging_utils.disable_logging()
        try:
            with mlflow_at(self.tracking_uri):
                created = mlflow.register_model(model_uri, self.model_name, tags=dict(tags))
        finally:
            logging_utils.enable_logging()
        log.info("registered %s version %s from %s", self.model_name, created.version, model_uri)
        return self.version(str(created.version))

    def promote(self, version: str, alias: str = CHAMPION, reason: str | None = None) -> Promotion:
        """Give `version` the alias and announce it on the bus; the former champion keeps the
        alias `previous`, and a challenger made champion stops being the challenger (AliasError
        for the champion made challenger). Promoting the version that already holds the alias
        changes nothing.

        A reason is kept with the alias change: the version's tag `promotion_reason` and the
        registered model's `<alias>_reason` (`champion_reason`).
        """
        self.version(version)  # ModelNotFoundError when there is no such one
        former = self.alias(alias)
        if former is not None and former.version == str(version):
            return Promotion(former, alias, announced_on=None)
        champion = self.champion() if alias == CHALLENGER else None
        if champion is not None and champion.version == str(version):
            raise AliasError(
                f"version {version} is the {CHAMPION}: a {CHALLENGER} is scored beside it, "
                "so it must be another version"
            )
        released: tuple[str, ...] = ()
        challenger = self.alias(CHALLENGER) if alias == CHAMPION else None
        if challenger is not None and challenger.version == str(version):
            # Scoring the champion in its own shadow tells nothing.
            self.unset_alias(CHALLENGER)
            released = (CHALLENGER,)
        previous_alias = _PREVIOUS_ALIAS.get(alias)
        if former is not None and previous_alias is not None:
            self.client.set_registered_model_alias(self.model_name, previous_alias, former.version)
        self.client.set_registered_model_alias(self.model_name, alias, str(version))
        if reason is not None:
            self.client.set_model_version_tag(
                self.model_name, str(version), PROMOTION_REASON_TAG, reason
            )
            self.client.set_registered_model_tag(self.model_name, f"{alias}_reason", reason)
        log.info(
            "%s version %s is now %s (was version %s)",
            self.model_name,
            version,
            alias,
            former.version if former else None,
        )
        announced = self.announce(str(version), alias)
        return Promotion(self.version(str(version)), alias, announced, released)

    def unset_alias(self, alias: str) -> AliasRemoved | None:
        """Take the alias from the version holding it (None: none does) and announce that nobody
        holds it now, so the workers that follow it stop (a challenger's shadow scoring).
        AliasError for the champion: serving needs one; promote another version instead."""
        if alias == CHAMPION:
            raise AliasError(
                f"the {CHAMPION} serves every prediction and cannot be unset: promote another "
                "version instead (`airparadis models promote N`)"
            )
        former = self.alias(alias)
        if former is None:
            return None
        self.client.delete_registered_model_alias(self.model_name, alias)
        log.info("%s version %s is no longer %s", self.model_name, former.version, alias)
        announced = self.announce(former.version, alias, removed=True)
        return AliasRemoved(self.version(former.version), alias, announced)

    def announce(self, version: str, alias: str = CHAMPION, *, removed: bool = False) -> str | None:
        """Publish models.promoted for `version` and `alias` (or, removed, its loss of the alias)
        on the platform's bus, so infer reloads and the store copies its drift reference.
        Returns where, or None when there is nobody to tell (a registry without settings, no
        NATS server reachable, no stream made yet) or the bus refused: workers read the
        registry at their next start."""
        if self.bus is None:
            return None
        from shared.bus import reachable_bus_url

        url = reachable_bus_url(self.bus)
        if url is None:
            return None
        from shared.messages import ModelPromoted

        event = ModelPromoted(
            model_name=self.model_name, version=str(version), alias=alias, removed=removed
        )
        try:
            asyncio.run(publish_promotion(self.bus, url, event))
        except nats.js.errors.NoStreamResponseError:
            # `bus init` has not made the streams yet (the first start): each reads the
            # registry when it starts, so there is nobody to tell.
            log.info("no models stream on %s yet: the promotion is read at start", url)
            return None
        except (nats.errors.Error, OSError) as error:
            log.warning("promotion of version %s not announced on %s: %s", version, url, error)
            return None
        return url


async def publish_promotion(settings: Settings, url: str, event: ModelPromoted) -> None:
    """Publish one models.promoted event on the bus at url (its own connection)."""
    from shared import subjects
    from shared.bus import make_broker, publish_event

    broker = make_broker(settings, servers=url)
    await broker.connect()
    try:
        await publish_event(
            broker,
            event,
            subjects.MODELS_PROMOTED,
            msg_id=f"{'unset' if event.removed else 'promoted'}-{event.model_name}-{event.alias}-"
            f"{event.version}-{event.promoted_at.timestamp()}",
            stream=subjects.STREAM_MODELS,
        )
    finally:
        await broker.stop()
