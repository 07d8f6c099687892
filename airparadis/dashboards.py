"""The Grafana dashboards: rendered into dashboards/*.json from the queries of shared/panels.py
and shared/drift.py (the one place their SQL is written), and pushed to a Grafana server.

    python -m airparadis.dashboards render            # rewrite dashboards/*.json
    python -m airparadis.dashboards render --check    # fail if they are out of date
    airparadis dashboards push --grafana-url https://grafana.example --token ...
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import typer

from shared.drift import PSI_ALERT, PSI_WARN
from shared.grafana_sql import PanelQuery
from shared.panels import QUERIES

log = logging.getLogger(__name__)

DASHBOARDS_DIR = Path(__file__).resolve().parents[1] / "dashboards"
DATASOURCE_TYPE = "grafana-clickhouse-datasource"
DATASOURCE_UID = "clickhouse"
DATASOURCE = {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
FOLDER_UID = "airparadis"
FOLDER_TITLE = "Air Paradis"
TAG = "airparadis"
SCHEMA_VERSION = 39
GRID_WIDTH = 24
# Grafana's code for the result format of a query: 0 time series, 1 table.
_FORMAT_CODE = {"time_series": 0, "table": 1}

PanelType = Literal["timeseries", "table"]


# --- What each dashboard shows ---


@dataclass(frozen=True)
class Panel:
    """A panel: one query of shared/panels.QUERIES, drawn one way."""

    query: str
    title: str
    type: PanelType
    width: int = 12
    height: int = 8
    unit: str = "short"
    legend: str | None = None  # displayName: how a series is named in the legend
    psi_thresholds: bool = False  # draw the 0.1 (warn) and 0.25 (alert) lines
    bars: bool = False
    interval: str | None = None  # the smallest bucket Grafana may use
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Dashboard:
    uid: str
    file: str
    title: str
    description: str
    time_from: str
    refresh: str
    panels: tuple[Panel, ...]
    # "version": one model_version variable with an All option; "model": model_name and
    # model_version, one of each (drift compares one version with its own reference).
    variables: Literal["version", "model"] = "version"
    tags: tuple[str, ...] = field(default=())


BY_VERSION = "v${__field.labels.model_version}"

DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        uid="airparadis-traffic",
        file="traffic.json",
        title="Air Paradis: traffic and latency",
        description="Predictions per minute, latency from submission to score, infer batch "
        "sizes, by model version; requests refused for their rate (429).",
        time_from="now-6h",
        refresh="30s",
        tags=("traffic",),
        panels=(
            Panel(
                "traffic_per_minute",
                "Predictions per minute",
                "timeseries",
                legend=BY_VERSION,
                min=0,
            ),
            Panel(
                "latency_quantiles",
                "Latency p50 / p95 / p99",
                "timeseries",
                unit="ms",
                legend="${__field.name} v${__field.labels.model_version}",
                min=0,
            ),
            Panel(
                "batch_sizes",
                "Infer batch size",
                "timeseries",
                legend="${__field.name} v${__field.labels.model_version}",
                min=0,
            ),
            Panel("traffic_by_version", "By model version", "table"),
            Panel(
                "refused_per_minute",
                "Requests refused for their rate (429)",
                "timeseries",
                width=24,
                legend="${__field.labels.rate_limit} by ${__field.labels.refused_by}",
                bars=True,
                interval="1m",
                min=0,
            ),
        ),
    ),
    Dashboard(
        uid="airparadis-quality",
        file="quality.json",
        title="Air Paradis: quality",
        description="Precision of the positive label on live traffic (estimated from the "
        "share of positive tweets), the threshold in use, the share of predictions that users "
        "reported wrong, the reports themselves, and the alerts raised.",
        time_from="now-24h",
        refresh="1m",
        tags=("quality",),
        panels=(
            Panel(
                "live_precision",
                'Precision of "positive" on live traffic (estimated, 90 % interval)',
                "timeseries",
                unit="percentunit",
                min=0,
                max=1,
            ),
            Panel(
                "live_prior",
                "Share of positive tweets (estimated; Sentiment140: 50 %)",
                "timeseries",
                unit="percentunit",
                min=0,
                max=1,
            ),
            Panel(
                "threshold_in_use",
                "Threshold in use",
                "timeseries",
                legend=BY_VERSION,
                min=0,
                max=1,
            ),
            Panel(
                "reported_wrong_labels",
                "Reports with a correct label (the ground truth there is)",
                "timeseries",
                bars=True,
                min=0,
            ),
            Panel("threshold_changes", "Threshold changes", "table", width=24, height=8),
            Panel(
                "error_rate",
                "Share of predictions reported wrong",
                "timeseries",
                width=16,
                unit="percentunit",
                legend=BY_VERSION,
                min=0,
            ),
            Panel("error_rate_by_version", "Error rate by model version", "table", width=8),
            Panel(
                "alerts_over_time",
                "Alerts",
                "timeseries",
                width=24,
                height=6,
                legend="${__field.labels.kind}",
                bars=True,
                min=0,
            ),
            Panel(
                "shadow_agreement",
                "Champion vs challenger (shadow): agreement and positive rates",
                "timeseries",
                width=16,
                unit="percentunit",
                legend="${__field.name} v${__field.labels.challenger}",
                min=0,
                max=1,
            ),
            Panel("shadow_summary", "Champion vs challenger on the same tweets", "table", width=8),
            Panel("recent_reports", "Recent reports", "table", width=24, height=10),
            Panel("recent_alerts", "Recent alerts", "table", width=24, height=8),
        ),
    ),
    Dashboard(
        uid="airparadis-drift",
        file="drift.json",
        title="Air Paradis: drift",
        description="Population stability index (PSI) of the predicted probability and of "
        "text features against the validation set of the model version, per hour: above "
        f"{PSI_WARN} is worth a look, above {PSI_ALERT} is drift. And the language mix: tweets "
        "in a language the model did not learn are a drift no word feature shows.",
        time_from="now-2d",
        refresh="5m",
        tags=("drift",),
        variables="model",
        panels=(
            Panel(
                "psi_probability",
                "PSI of the predicted probability",
                "timeseries",
                height=9,
                unit="none",
                legend="probability",
                psi_thresholds=True,
                interval="1h",
                min=0,
            ),
            Panel(
                "psi_text_features",
                "PSI of text features",
                "timeseries",
                height=9,
                unit="none",
                legend="${__field.labels.feature}",
                psi_thresholds=True,
                interval="1h",
                min=0,
            ),
            Panel("psi_window", "PSI over the selected range", "table", psi_thresholds=True),
            Panel(
                "positive_rate",
                "Positive rate",
                "timeseries",
                unit="percentunit",
                legend=BY_VERSION,
                min=0,
                max=1,
            ),
            Panel(
                "language_mix",
                "Language mix (tweets per interval)",
                "timeseries",
                legend="${__field.labels.language}",
                bars=True,
                min=0,
            ),
            Panel(
                "unreliable_share",
                "Tweets in a language the model did not learn",
                "timeseries",
                width=16,
                unit="percentunit",
                legend=BY_VERSION,
                min=0,
                max=1,
            ),
            Panel("unreliable_by_version", "Not its language, by version", "table", width=8),
            Panel("language_totals", "Languages over the range", "table", width=24, height=7),
        ),
    ),
)


# --- Rendering ---


def _target(query: PanelQuery) -> dict[str, Any]:
    return {
        "refId": "A",
        "datasource": dict(DATASOURCE),
        "editorType": "sql",
        "format": _FORMAT_CODE[query.format],
        "queryType": "timeseries" if query.format == "time_series" else "table",
        "rawSql": query.sql,
    }


def _psi_steps() -> list[dict[str, Any]]:
    return [
        {"color": "green", "value": None},
        {"color": "orange", "value": PSI_WARN},
        {"color": "red", "value": PSI_ALERT},
    ]


def _field_config(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit}
    if panel.min is not None:
        defaults["min"] = panel.min
    if panel.max is not None:
        defaults["max"] = panel.max
    if panel.legend:
        defaults["displayName"] = panel.legend
    overrides: list[dict[str, Any]] = []
    steps = _psi_steps() if panel.psi_thresholds else [{"color": "green", "value": None}]
    if panel.type == "timeseries":
        defaults["color"] = {"mode": "palette-classic"}
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "lineWidth": 2,
            "fillOpacity": 60 if panel.bars else 10,
            "showPoints": "auto",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "dashed" if panel.psi_thresholds else "off"},
        }
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
    else:
        defaults["custom"] = {"align": "auto", "cellOptions": {"type": "auto"}}
        if panel.psi_thresholds:
            overrides.append(
                {
                    "matcher": {"id": "byName", "options": "psi"},
                    "properties": [
                        {"id": "decimals", "value": 3},
                        {"id": "thresholds", "value": {"mode": "absolute", "steps": steps}},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    ],
                }
            )
    return {"defaults": defaults, "overrides": overrides}


def _options(panel: Panel) -> dict[str, Any]:
    if panel.type == "table":
        return {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "none"},
    }


def _layout(panels: Sequence[Panel]) -> list[dict[str, int]]:
    """Grid positions: panels left to right, a new row when the next one does not fit."""
    positions, x, y, row_height = [], 0, 0, 0
    for panel in panels:
        if x + panel.width > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        positions.append({"h": panel.height, "w": panel.width, "x": x, "y": y})
        x, row_height = x + panel.width, max(row_height, panel.height)
    return positions


def _panel(number: int, panel: Panel, position: dict[str, int]) -> dict[str, Any]:
    query = QUERIES[panel.query]
    rendered: dict[str, Any] = {
        "id": number,
        "type": panel.type,
        "title": panel.title,
        "description": query.description,
        "datasource": dict(DATASOURCE),
        "gridPos": position,
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
        "targets": [_target(query)],
    }
    if panel.interval:
        rendered["interval"] = panel.interval
    return rendered


def _variable(name: str, label: str, query: str, *, include_all: bool) -> dict[str, Any]:
    sql = QUERIES[query].sql
    variable: dict[str, Any] = {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": dict(DATASOURCE),
        "query": sql,
        "definition": sql,
        "refresh": 2,  # on every change of the time range
        "sort": 0,  # as the query orders them: the latest version first
        "multi": False,
        "includeAll": include_all,
        "hide": 0,
        "regex": "",
        "options": [],
        "current": {"text": "All", "value": "$__all"} if include_all else {},
    }
    return variable


def _variables(dashboard: Dashboard) -> list[dict[str, Any]]:
    if dashboard.variables == "version":
        return [_variable("model_version", "Model version", "model_versions", include_all=True)]
    return [
        _variable("model_name", "Model", "model_names", include_all=False),
        _variable("model_version", "Model version", "model_versions_of_model", include_all=False),
    ]


def render_dashboard(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (no id: Grafana gives one)."""
    positions = _layout(dashboard.panels)
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": [TAG, *dashboard.tags],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
        "refresh": dashboard.refresh,
        "links": [
            {
                "type": "dashboards",
                "title": "Air Paradis",
                "tags": [TAG],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": _variables(dashboard)},
        "panels": [
            _panel(number, panel, position)
            for number, (panel, position) in enumerate(
                zip(dashboard.panels, positions, strict=True), start=1
            )
        ],
    }


def render_all() -> dict[str, dict[str, Any]]:
    """File name -> dashboard JSON, for every dashboard."""
    return {dashboard.file: render_dashboard(dashboard) for dashboard in DASHBOARDS}


def dashboard_text(model: Mapping[str, Any]) -> str:
    """The file text of a dashboard: stable, readable, one final newline."""
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def outdated_files(directory: Path = DASHBOARDS_DIR) -> list[str]:
    """Dashboard files that differ from what the registry renders (or are missing)."""
    return [
        name
        for name, model in render_all().items()
        if not (directory / name).is_file()
        or (directory / name).read_text(encoding="utf-8") != dashboard_text(model)
    ]


def write_dashboards(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write every dashboard into `directory`; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in render_all().items():
        path = directory / name
        path.write_text(dashboard_text(model), encoding="utf-8")
        written.append(path)
    return written


# --- Pushing to Grafana ---


class PushError(RuntimeError):
    """Grafana refused a step of the push; the message says which and why."""


Outcome = Literal["created", "updated", "unchanged", "provisioned"]

_DEFAULT_PORTS = {
    ("http", False): 8123,
    ("http", True): 8443,
    ("native", False): 9000,
    ("native", True): 9440,
}
_SCHEMES = {
    "http": ("http", False),
    "https": ("http", True),
    "clickhouse": ("native", False),
    "clickhouses": ("native", True),
}


def datasource_model(clickhouse_url: str, name: str = "ClickHouse") -> dict[str, Any]:
    """The Grafana data source for ClickHouse as Grafana reaches it:
    `http(s)://user:password@host:port/database` (HTTP) or `clickhouse(s)://...` (native).
    Give a read-only user: Grafana runs any SQL a dashboard holds."""
    parts = urlsplit(clickhouse_url)
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise ValueError(
            "ClickHouse URL must be http(s):// or clickhouse(s)://[user:password@]host[:port]/db"
        )
    protocol, secure = _SCHEMES[parts.scheme]
    model: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": name,
        "type": DATASOURCE_TYPE,
        "access": "proxy",
        "jsonData": {
            "host": parts.hostname,
            "port": parts.port or _DEFAULT_PORTS[(protocol, secure)],
            "protocol": protocol,
            "secure": secure,
            "username": unquote(parts.username or "default"),
            "defaultDatabase": unquote(parts.path.strip("/")) or "airparadis",
        },
    }
    if parts.password:
        model["secureJsonData"] = {"password": unquote(parts.password)}
    return model


def _status(error: Exception) -> int | None:
    status = getattr(error, "status_code", None)
    return status if isinstance(status, int) else None


def _get_or_none(call: Any, *args: Any) -> Any:
    from grafana_client.client import GrafanaClientError

    try:
        return call(*args)
    except GrafanaClientError as error:
        if _status(error) == 404:
            return None
        raise


def push_datasource(grafana: Any, model: Mapping[str, Any], *, force: bool = False) -> Outcome:
    """Create the data source, or update it when its settings differ. Grafana never shows a
    stored password back, so only its presence is compared; --force sends it again."""
    current = _get_or_none(grafana.datasource.get_datasource_by_uid, model["uid"])
    if current is None:
        grafana.datasource.create_datasource(dict(model))
        return "created"
    if current.get("readOnly"):
        return "provisioned"
    wanted_password = "secureJsonData" in model
    stored_password = bool((current.get("secureJsonFields") or {}).get("password"))
    same = (
        all(current.get(key) == model[key] for key in ("name", "type", "access"))
        and current.get("jsonData") == model["jsonData"]
        and (stored_password or not wanted_password)
    )
    if same and not force:
        return "unchanged"
    grafana.datasource.update_datasource_by_uid(model["uid"], dict(model))
    return "updated"


def push_folder(grafana: Any, uid: str = FOLDER_UID, title: str = FOLDER_TITLE) -> Outcome:
    """Create the dashboards' folder, or give it back its title."""
    current = _get_or_none(grafana.folder.get_folder, uid)
    if current is None:
        grafana.folder.create_folder(title, uid=uid)
        return "created"
    if current.get("title") == title:
        return "unchanged"
    grafana.folder.update_folder(uid, title=title, overwrite=True)
    return "updated"


_SET_BY_GRAFANA = frozenset({"id", "version"})


def push_dashboard(
    grafana: Any, model: Mapping[str, Any], folder_uid: str = FOLDER_UID, *, force: bool = False
) -> Outcome:
    """Create or overwrite the dashboard of the same uid, unless it already is this one."""
    current = _get_or_none(grafana.dashboard.get_dashboard, model["uid"])
    if current is not None:
        stored, meta = current.get("dashboard", {}), current.get("meta", {})
        same = meta.get("folderUid") == folder_uid and all(
            stored.get(key) == value for key, value in model.items() if key not in _SET_BY_GRAFANA
        )
        if same and not force:
            return "unchanged"
        if meta.get("provisioned"):
            return "provisioned"
    grafana.dashboard.update_dashboard(
        {
            "dashboard": {k: v for k, v in model.items() if k not in _SET_BY_GRAFANA},
            "folderUid": folder_uid,
            "overwrite": True,
            "message": "airparadis dashboards push",
        }
    )
    return "created" if current is None else "updated"


def push(
    grafana: Any,
    datasource: Mapping[str, Any] | None,
    *,
    folder_title: str = FOLDER_TITLE,
    force: bool = False,
) -> dict[str, Outcome]:
    """Bring Grafana in line: the data source (unless None), the folder, every dashboard.
    Idempotent: a second push reports every item `unchanged` and changes nothing."""
    from grafana_client.client import GrafanaException

    report: dict[str, Outcome] = {}
    step = "data source"
    try:
        if datasource is not None:
            report["datasource"] = push_datasource(grafana, datasource, force=force)
        step = "folder"
        report["folder"] = push_folder(grafana, FOLDER_UID, folder_title)
        for model in render_all().values():
            step = f"dashboard {model['uid']}"
            report[model["uid"]] = push_dashboard(grafana, model, FOLDER_UID, force=force)
    except GrafanaException as error:
        raise PushError(f"Grafana refused the {step}: {error.message}") from error
    except OSError as error:  # the HTTP client's connection errors are OSErrors
        raise PushError(f"cannot reach Grafana for the {step}: {error}") from error
    return report


# --- Commands ---

app = typer.Typer(
    help="Grafana dashboards: rendered from shared/panels.py, pushed to Grafana.",
    no_args_is_help=True,
)


@app.command()
def render(
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the files are out of date; write nothing.")
    ] = False,
    directory: Annotated[Path, typer.Option(help="Where the JSON files go.")] = DASHBOARDS_DIR,
) -> None:
    """Write dashboards/*.json from the queries of shared/panels.py."""
    if check:
        outdated = outdated_files(directory)
        if outdated:
            typer.echo(f"out of date: {', '.join(outdated)} (run: airparadis dashboards render)")
            raise typer.Exit(1)
        typer.echo("dashboards up to date")
        return
    for path in write_dashboards(directory):
        typer.echo(f"wrote {path}")


@app.command("push")
def push_command(
    grafana_url: Annotated[
        str, typer.Option(envvar="GRAFANA_URL", help="Grafana's URL, e.g. http://localhost:3000.")
    ],
    token: Annotated[
        str | None,
        typer.Option(envvar="GRAFANA_TOKEN", help="Service account token (Editor or Admin)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option(envvar="GRAFANA_USER", help="Basic auth user, without a token.")
    ] = None,
    password: Annotated[
        str | None, typer.Option(envvar="GRAFANA_PASSWORD", help="Basic auth password.")
    ] = None,
    clickhouse_url: Annotated[
        str | None,
        typer.Option(
            help="ClickHouse as Grafana reaches it, with a read-only user: "
            "http://reader:pass@clickhouse:8123/airparadis. Default: AIRPARADIS_CLICKHOUSE_URL."
        ),
    ] = None,
    skip_datasource: Annotated[
        bool, typer.Option("--skip-datasource", help="Leave the data source alone.")
    ] = False,
    folder: Annotated[str, typer.Option(help="Folder of the dashboards.")] = FOLDER_TITLE,
    force: Annotated[
        bool, typer.Option("--force", help="Send everything again, even what is unchanged.")
    ] = False,
) -> None:
    """Create or update the ClickHouse data source and the dashboards in Grafana.

    Each is matched by uid and sent only when it differs: a second run changes nothing.
    """
    from grafana_client import GrafanaApi

    from shared.settings import Settings

    if token:
        credential: str | tuple[str, str] | None = token
    elif user and password:
        credential = (user, password)
    else:
        raise typer.BadParameter("give --token, or --user and --password")
    datasource = None
    if not skip_datasource:
        url = clickhouse_url or Settings().clickhouse_url
        if not url:
            raise typer.BadParameter(
                "give --clickhouse-url (ClickHouse as Grafana reaches it) or --skip-datasource"
            )
        datasource = datasource_model(url)
    grafana = GrafanaApi.from_url(grafana_url, credential=credential, timeout=30.0)
    try:
        report = push(grafana, datasource, folder_title=folder, force=force)
    except PushError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from error
    for item, outcome in report.items():
        typer.echo(f"{item}: {outcome}")


if __name__ == "__main__":
    app()
