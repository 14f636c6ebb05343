"""The Runs page's filter as it travels in the URL: statuses, type, a time range (a preset such as the
last hour, or from/to times), an id prefix and the page's cursor. Bad values are dropped, not errors:
the page shows what the rest of the filter finds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from multidict import MultiMapping

from grctl.engine.runindex import Cursor, RunFilter
from grctl.models.common import RunStatus

RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "6h": timedelta(hours=6),
          "24h": timedelta(days=1), "7d": timedelta(days=7)}
STATUSES = frozenset(str(s) for s in RunStatus)


def _time(text: str) -> datetime | None:
    """An ISO time (a browser's ``datetime-local`` value, read as UTC without an offset), or None."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cursor_text(cursor: Cursor) -> str:
    """A page cursor as the URL carries it (``_cursor`` reads it back)."""
    return f"{cursor.created!r}:{cursor.run_id}"


def _cursor(text: str) -> Cursor | None:
    created, _, run_id = text.partition(":")
    try:
        return Cursor(float(created), run_id) if run_id else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RunsQuery:
    statuses: tuple[str, ...] = ()
    wf_type: str = ""
    range: str = ""  # a key of RANGES, or "" for from/to (or all time)
    start: str = ""  # from (ISO), when range is ""
    end: str = ""  # to (ISO), when range is ""
    prefix: str = ""  # workflow id or run id prefix
    after_text: str = ""
    stuck: bool = False  # only runs held by a mismatch between code and run

    @classmethod
    def from_params(cls, given: MultiMapping[Any]) -> RunsQuery:
        """From the page's URL parameters (or a bulk action's form fields)."""
        params = {key: str(value) for key, value in given.items() if key != "status"} | {
            "status": ",".join(str(v) for v in given.getall("status", []))}
        statuses = [s for s in params["status"].split(",") if s in STATUSES]
        return cls(statuses=tuple(sorted(set(statuses))), wf_type=params.get("type", "").strip(),
                   range=params.get("range", "") if params.get("range", "") in RANGES else "",
                   start=params.get("from", "").strip() if _time(params.get("from", "")) else "",
                   end=params.get("to", "").strip() if _time(params.get("to", "")) else "",
                   prefix=params.get("q", "").strip(), after_text=params.get("after", ""),
                   stuck=params.get("stuck", "") == "1")

    @property
    def after(self) -> Cursor | None:
        return _cursor(self.after_text)

    def filter(self, now: datetime) -> RunFilter:
        since = now - RANGES[self.range] if self.range else _time(self.start)
        until = None if self.range else _time(self.end)
        return RunFilter(frozenset(self.statuses), self.wf_type, since, until, self.prefix, self.stuck)

    def params(self, after: str | None = None, statuses: tuple[str, ...] | None = None,
               stuck: bool | None = None) -> str:
        """This query as URL parameters, with another page cursor, other statuses or stuck runs only."""
        query = replace(self, after_text=self.after_text if after is None else after,
                        statuses=self.statuses if statuses is None else statuses,
                        stuck=self.stuck if stuck is None else stuck)
        pairs = [("status", s) for s in query.statuses]
        for key, value in (("type", query.wf_type), ("range", query.range), ("from", query.start),
                           ("to", query.end), ("q", query.prefix), ("after", query.after_text)):
            if value:
                pairs.append((key, value))
        return urlencode(pairs + ([("stuck", "1")] if query.stuck else []))

    def form_fields(self) -> list[tuple[str, str]]:
        """The filter as hidden form fields (for a bulk action on it)."""
        fields = [("status", s) for s in self.statuses]
        fields += [(k, v) for k, v in (("type", self.wf_type), ("range", self.range), ("from", self.start),
                                       ("to", self.end), ("q", self.prefix)) if v]
        return fields + ([("stuck", "1")] if self.stuck else [])
