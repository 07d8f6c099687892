"""Grafana-macro SQL made runnable: the macros of Grafana's ClickHouse data source
(grafana-clickhouse-datasource) and the dashboard variables filled with concrete times and query
parameters, so that the platform runs the very SQL its dashboards run, on chDB or on a server.

A `PanelQuery` is one named query in that SQL; the platform's are in shared/panels.py (traffic,
quality) and shared/drift.py (the PSI), and airparadis/dashboards.py renders the dashboards
from them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from shared.storage import Store, as_utc

QueryFormat = Literal["time_series", "table"]

VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}")
BARE_VARIABLE = re.compile(r"\$(?!__)(\w+)")
_MACRO = re.compile(r"\$__(\w+)")
_FORMATTED = re.compile(r"\$\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True)
class PanelQuery:
    """A named query in Grafana-macro SQL: as a time series, its first column `t` is the time
    bucket and any string column splits the series (long format)."""

    name: str
    sql: str
    format: QueryFormat
    description: str

    @property
    def variables(self) -> frozenset[str]:
        """The dashboard variables the query refers to."""
        return frozenset(VARIABLE.findall(self.sql)) | frozenset(BARE_VARIABLE.findall(self.sql))


class MacroError(ValueError):
    """A query uses a macro or a variable that `expand` cannot fill; the message says which."""


@dataclass(frozen=True)
class TimeWindow:
    """What Grafana passes with a query: the time range and the interval of the buckets."""

    since: datetime
    until: datetime
    interval_s: int = 60

    def __post_init__(self) -> None:
        if self.until < self.since:
            raise ValueError(f"the window ends ({self.until}) before it starts ({self.since})")
        if self.interval_s < 1:
            raise ValueError(f"interval_s must be at least 1, got {self.interval_s}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds(moment: datetime) -> int:
    return (as_utc(moment) - _EPOCH) // timedelta(seconds=1)


def _milliseconds(moment: datetime) -> int:
    # Integer arithmetic: a float timestamp times 1000 can land a millisecond short.
    return (as_utc(moment) - _EPOCH) // timedelta(milliseconds=1)


def _macro_arguments(sql: str, start: int) -> tuple[list[str], int]:
    """The comma-separated arguments of a macro call whose "(" is at `start` (nested
    parentheses and quotes respected), and the index just past its ")"."""
    depth, quote = 0, ""
    current: list[str] = []
    arguments: list[str] = []
    for index in range(start + 1, len(sql)):
        char = sql[index]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                arguments.append("".join(current).strip())
                return arguments, index + 1
            depth -= 1
        elif char == "," and depth == 0:
            arguments.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    raise MacroError(f"unclosed macro call at {sql[start - 20 : start + 20]!r}")


def _one_argument(name: str, arguments: list[str]) -> str:
    if len(arguments) != 1 or not arguments[0]:
        raise MacroError(f"$__{name} takes one argument, got {arguments}")
    return arguments[0]


def _fill_macro(
    name: str, arguments: list[str] | None, window: TimeWindow, variables: Mapping[str, str | None]
) -> str:
    """The text the grafana-clickhouse-datasource puts in place of one macro (its backend
    macros, pkg/macros/macros.go, and the front end's $__conditionalAll)."""
    since_s, until_s = _seconds(window.since), _seconds(window.until)
    since_ms, until_ms = _milliseconds(window.since), _milliseconds(window.until)
    plain = {
        "fromTime": f"toDateTime({since_s})",
        "toTime": f"toDateTime({until_s})",
        "fromTime_ms": f"fromUnixTimestamp64Milli({since_ms})",
        "toTime_ms": f"fromUnixTimestamp64Milli({until_ms})",
        "interval_s": str(window.interval_s),
    }
    if name in plain and arguments is None:
        return plain[name]
    if arguments is None:
        raise MacroError(f"$__{name} needs arguments or is not a macro this expander knows")
    if name == "timeFilter":
        column = _one_argument(name, arguments)
        return f"{column} >= toDateTime({since_s}) AND {column} <= toDateTime({until_s})"
    if name == "timeFilter_ms":
        column = _one_argument(name, arguments)
        return (
            f"{column} >= fromUnixTimestamp64Milli({since_ms}) AND "
            f"{column} <= fromUnixTimestamp64Milli({until_ms})"
        )
    if name == "timeInterval":
        column = _one_argument(name, arguments)
        return f"toStartOfInterval(toDateTime({column}), INTERVAL {window.interval_s} second)"
    if name == "conditionalAll":
        if len(arguments) != 2 or not arguments[1].startswith("$"):
            raise MacroError(f"$__conditionalAll takes (condition, $variable), got {arguments}")
        variable = arguments[1][1:]
        if variable not in variables:
            raise MacroError(f"$__conditionalAll refers to ${variable}, which has no value")
        return "1=1" if variables[variable] is None else arguments[0]
    raise MacroError(f"unknown macro $__{name}")


def _expand_macros(sql: str, window: TimeWindow, variables: Mapping[str, str | None]) -> str:
    out: list[str] = []
    position = 0
    while match := _MACRO.search(sql, position):
        out.append(sql[position : match.start()])
        name, end = match.group(1), match.end()
        arguments: list[str] | None = None
        if end < len(sql) and sql[end] == "(":
            arguments, end = _macro_arguments(sql, end)
        # A macro's arguments may hold macros or variables of their own.
        filled = _fill_macro(name, arguments, window, variables)
        out.append(_expand_macros(filled, window, variables) if arguments else filled)
        position = end
    out.append(sql[position:])
    return "".join(out)


def expand(
    sql: str, window: TimeWindow, variables: Mapping[str, str | None] | None = None
) -> tuple[str, dict[str, str]]:
    """Grafana-macro SQL made runnable, and its query parameters.

    Macros are filled as the ClickHouse data source fills them; `${name:singlequote}` becomes
    the server-side parameter `{name:String}` (the value travels apart from the SQL). A variable
    set to None stands for its "All" option.
    """
    values = dict(variables or {})
    expanded = _expand_macros(sql, window, values)
    parameters: dict[str, str] = {}

    def parameter(match: re.Match[str]) -> str:
        name, style = match.group(1), match.group(2)
        if style != "singlequote":
            raise MacroError(f"write the variable as ${{{name}:singlequote}}, not {match.group()}")
        value = values.get(name)
        if value is None:
            raise MacroError(f"the query needs a value for ${name}")
        parameters[name] = value
        return f"{{{name}:String}}"

    expanded = _FORMATTED.sub(parameter, expanded)
    if leftover := BARE_VARIABLE.search(expanded):
        raise MacroError(f"variable {leftover.group()} outside $__conditionalAll is not supported")
    return expanded, parameters


def auto_interval_s(since: datetime, until: datetime, max_points: int = 120) -> int:
    """A round bucket width giving at most `max_points` buckets, one minute at least."""
    span = max((as_utc(until) - as_utc(since)).total_seconds(), 1.0)
    for step in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= max_points:
            return step
    return 86400 * math.ceil(span / 86400 / max_points)


def run_panel(
    store: Store,
    query: PanelQuery,
    since: datetime,
    until: datetime,
    *,
    interval_s: int | None = None,
    variables: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of a panel query over [since, until], its macros and variables filled."""
    window = TimeWindow(since, until, interval_s or auto_interval_s(since, until))
    return run_sql(store, query.sql, window, variables)


def run_sql(
    store: Store,
    sql: str,
    window: TimeWindow,
    variables: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of Grafana-macro SQL (a panel's rawSql) over the window, as Grafana would get them;
    the time bucket `t` comes back as a UTC datetime."""
    expanded, parameters = expand(sql, window, variables)
    return [_bucket_as_datetime(row) for row in store.query(expanded, parameters)]


def _bucket_as_datetime(row: dict[str, Any]) -> dict[str, Any]:
    # $__timeInterval gives a DateTime (seconds), which Arrow results carry as a Unix time.
    bucket = row.get("t")
    if isinstance(bucket, int):
        row["t"] = datetime.fromtimestamp(bucket, UTC)
    return row
