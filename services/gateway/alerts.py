"""Which reports raised an alert: the gateway listens to alerts.raised so that a report's
answer can say the team has been notified."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from faststream.nats import DeliverPolicy, JStream, NatsBroker

from shared import subjects
from shared.messages import AlertRaised

REMEMBERED_REPORTS = 10_000


class AlertWatcher:
    def __init__(self) -> None:
        self._alert_of_report: OrderedDict[str, str] = OrderedDict()
        self._waiting: dict[str, asyncio.Future[str]] = {}

    def record(self, alert: AlertRaised) -> None:
        for report_id in alert.details.get("report_ids", []):
            self._alert_of_report[report_id] = alert.id
            self._alert_of_report.move_to_end(report_id)
            future = self._waiting.pop(report_id, None)
            if future is not None and not future.done():
                future.set_result(alert.id)
        while len(self._alert_of_report) > REMEMBERED_REPORTS:
            self._alert_of_report.popitem(last=False)

    async def alert_for(self, report_id: str, wait_s: float) -> str | None:
        """The id of the alert this report raised, waiting up to wait_s for it."""
        if report_id in self._alert_of_report:
            return self._alert_of_report[report_id]
        if wait_s <= 0:
            return None
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[report_id] = future
        try:
            return await asyncio.wait_for(future, timeout=wait_s)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(report_id, None)

    def register(self, broker: NatsBroker, alerts_stream: JStream) -> None:
        # An ephemeral consumer of the stream, from now on: each gateway replica sees every
        # new alert, and nothing is stored for it.
        @broker.subscriber(
            subjects.ALERTS_RAISED, stream=alerts_stream, deliver_policy=DeliverPolicy.NEW
        )
        async def on_alert_raised(alert: AlertRaised) -> None:
            self.record(alert)
