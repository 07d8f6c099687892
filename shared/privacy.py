"""Right to erasure and access: which rows hold a person's data, how they are removed or
exported, and the audit row of each request (table `audit`, infra/clickhouse/004_privacy.sql).

SQL over the `Store` interface, the same on chDB and a ClickHouse server. The store worker runs
it for `airparadis data` while the platform runs (rpc.store.forget / rpc.store.export,
services/store/privacy.py); the command runs it itself when no store worker answers
(airparadis/privacy.py).

What a selector reaches: the predictions it names (by id, by a text their tweet contains,
case-insensitively, or stored before a moment), the reports (feedback) about them or whose
tweet or comment contains the text, and the alerts that quote any of those reports or
predictions, or contain the text. Rows go with a lightweight DELETE, invisible to every read at
once (FINAL included) and dropped from disk at the next merges.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from shared.messages import DataExported, DataForgotten, DataSelector
from shared.storage import Store

Action = Literal["forget", "export"]

# Every id an alert quotes (JSON written by shared/storage.py:alert_row, json.dumps's separators).
QUOTED_IDS = r'"(?:prediction_id|report_id)": "([^"]*)"'
_BEFORE = "fromUnixTimestamp64Milli({before_ms:Int64})"


@dataclass(frozen=True)
class Conditions:
    """The WHERE clause of each table for one selector, with its parameters. Feedback and
    alerts refer to the predictions (and feedback) still there: delete alerts first, then
    feedback, then predictions."""

    predictions: str
    feedback: str
    alerts: str
    parameters: dict[str, Any]


def conditions(selector: DataSelector) -> Conditions:
    parameters: dict[str, Any] = {"quoted": QUOTED_IDS}
    if selector.prediction_id is not None:
        parameters["id"] = selector.prediction_id
        predictions = "id = {id:String}"
        feedback = "prediction_id = {id:String}"
    elif selector.text_contains is not None:
        parameters["needle"] = selector.text_contains
        # As the text appears inside an alert's JSON details (quotes and backslashes escaped).
        parameters["needle_json"] = json.dumps(selector.text_contains, ensure_ascii=False)[1:-1]
        predictions = _contains("text")
        feedback = (
            f"{_contains('text')} OR {_contains('comment')}"
            f" OR prediction_id IN (SELECT id FROM predictions WHERE {predictions})"
        )
    else:
        assert selector.before is not None
        parameters["before_ms"] = int(selector.before.timestamp() * 1000)
        predictions = f"scored_at < {_BEFORE}"
        # A report stored later still quotes a prediction scored before (its snapshot).
        feedback = f"reported_at < {_BEFORE} OR scored_at < {_BEFORE}"
    alerts = (
        "hasAny(extractAll(details, {quoted:String}), "
        f"(SELECT groupArray(id) FROM feedback WHERE {feedback}))"
    )
    if selector.before is not None:
        alerts += f" OR raised_at < {_BEFORE}"
    else:  # a prediction quoted without its report (the report expired)
        alerts += (
            " OR hasAny(extractAll(details, {quoted:String}), "
            f"(SELECT groupArray(id) FROM predictions WHERE {predictions}))"
        )
    if selector.text_contains is not None:
        alerts += (
            " OR positionCaseInsensitiveUTF8(summary, {needle:String}) > 0"
            " OR positionCaseInsensitiveUTF8(details, {needle:String}) > 0"
            " OR positionCaseInsensitiveUTF8(details, {needle_json:String}) > 0"
        )
    return Conditions(predictions, feedback, alerts, parameters)


def _contains(column: str) -> str:
    return f"positionCaseInsensitiveUTF8({column}, {{needle:String}}) > 0"


def forget(store: Store, selector: DataSelector, actor: str, via: str) -> DataForgotten:
    """Remove every row the selector reaches; the counts are of distinct events (FINAL)."""
    where = conditions(selector)
    counts = {
        table: _count(store, table, condition, where.parameters)
        for table, condition in (
            ("predictions", where.predictions),
            ("feedback", where.feedback),
            ("alerts", where.alerts),
        )
    }
    # Alerts and feedback find what they quote among the rows still there: they go first.
    for table, condition in (
        ("alerts", where.alerts),
        ("feedback", where.feedback),
        ("predictions", where.predictions),
    ):
        if counts[table]:
            store.command(f"DELETE FROM {table} WHERE {condition}", where.parameters)
    audit_id = record(store, "forget", selector, actor, via, **counts)
    return DataForgotten(**counts, audit_id=audit_id)


def export(store: Store, prediction_id: str, actor: str, via: str) -> DataExported:
    """What is held about one prediction: its row, the reports about it, the alerts quoting
    them. The request is audited even when nothing is held."""
    selector = DataSelector(prediction_id=prediction_id)
    where = conditions(selector)
    predictions = _rows(store, "predictions", where.predictions, where.parameters, "scored_at")
    feedback = _rows(store, "feedback", where.feedback, where.parameters, "reported_at")
    alerts = _rows(store, "alerts", where.alerts, where.parameters, "raised_at")
    for alert in alerts:
        alert["details"] = json.loads(alert["details"] or "{}")
    audit_id = record(
        store,
        "export",
        selector,
        actor,
        via,
        predictions=len(predictions),
        feedback=len(feedback),
        alerts=len(alerts),
    )
    return DataExported(
        prediction_id=prediction_id,
        prediction=predictions[0] if predictions else None,
        feedback=feedback,
        alerts=alerts,
        audit_id=audit_id,
    )


def record(
    store: Store,
    action: Action,
    selector: DataSelector,
    actor: str,
    via: str,
    *,
    predictions: int,
    feedback: int,
    alerts: int,
) -> str:
    """Write the audit row of a request; its id."""
    audit_id = uuid.uuid4().hex
    store.insert(
        "audit",
        [
            {
                "id": audit_id,
                "at": datetime.now(UTC),
                "actor": actor,
                "action": action,
                "selector": selector.audited(),
                "predictions": predictions,
                "feedback": feedback,
                "alerts": alerts,
                "via": via,
            }
        ],
    )
    return audit_id


def _count(store: Store, table: str, condition: str, parameters: dict[str, Any]) -> int:
    rows = store.query(f"SELECT count() AS n FROM {table} FINAL WHERE {condition}", parameters)
    return int(rows[0]["n"])


def _rows(
    store: Store, table: str, condition: str, parameters: dict[str, Any], order: str
) -> list[dict[str, Any]]:
    rows = store.query(
        f"SELECT * FROM {table} FINAL WHERE {condition} ORDER BY {order}, id", parameters
    )
    return [{name: _json_value(value) for name, value in row.items()} for row in rows]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
