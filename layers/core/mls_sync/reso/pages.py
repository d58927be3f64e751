"""One page of the replication client: the query asked, the answer read and checked.

The shared ground of the client's readers: the OData ``$filter``/``$select``/``$top`` of a
query (the vendor's originating system and the connection's own filter AND-ed in), one GET
through the transport, a page's records parsed (unreadable ones kept as skipped), its
``nextLink`` resolved and guarded against loops and runs of empty pages, order checked, and
cursors placed from records, never later than the server's clock plus the allowed skew.
``ChangeReads`` and ``KeyLookups`` build on :class:`PageReading`.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar

from mls_sync.models import Cursor
from mls_sync.reso.cursor import literal_like, position, quote
from mls_sync.reso.errors import MlsMalformedPage, MlsProtocolError
from mls_sync.reso.odata import control, error_detail, resolve_link
from mls_sync.reso.profiles import VendorProfile
from mls_sync.reso.records import MlsRecord, SkippedRecord, parse_record
from mls_sync.reso.replication_models import ChangePage, ReplicationTarget
from mls_sync.reso.transport import Transport, build_url
from mls_sync.timeutil import Instant

MAX_EMPTY_PAGES = 20
"""Empty pages with a nextLink followed in a row before the server is called broken."""

logger = logging.getLogger("mls_sync.reso.client")  # the client's, as before the split

_Page = tuple[list[Any], list[MlsRecord], list[SkippedRecord], str | None]
"""A page as read: its raw values, the records, those skipped, and the next link (if any)."""

_T = TypeVar("_T")


class PageReading:
    """Queries and pages, as the client's readers share them (the client sets the state)."""

    target: ReplicationTarget
    profile: VendorProfile
    future_skew_seconds: float
    url: str
    _transport: Transport

    def _feed(self, pages: Iterator[_T]) -> Iterator[_T]:
        """The pages of a feed (changes, the event log) as this client hands them out: as
        read. A subclass that must act between pages (the budgeted client) wraps them here
        rather than restating each feed's signature."""
        return pages

    def _filter(self, condition: str) -> str:
        parts: list[str] = []
        osn = self.target.originating_system_name
        if self.profile.requires_originating_system and osn:
            name = osn.lower() if self.profile.lowercase_originating_system else osn
            parts.append(f"OriginatingSystemName eq {quote(name)}")
        if self.target.extra_filter:
            parts.append(f"({self.target.extra_filter})")
        parts.append(condition)
        return " and ".join(parts)

    def _params(
        self, condition: str, *, top: int, ordered: bool, orderby: str | None = None
    ) -> dict[str, str]:
        params = {
            "$filter": self._filter(condition),
            "$select": ",".join(self.profile.select_fields),
            "$top": str(top),
        }
        if ordered:
            params["$orderby"] = f"{self.profile.change_field} asc,{self.profile.key_field} asc"
        elif orderby:
            params["$orderby"] = orderby
        return params

    def _get(
        self,
        url: str,
        params: dict[str, str] | None,
        deadline: float | None,
        headers: dict[str, str] | None = None,
    ) -> tuple[dict[str, Any], str]:
        """One page, and the URL it was asked at (what a relative nextLink resolves against)."""
        body = self._transport.get_json(url, params, deadline=deadline, headers=headers)
        return body, build_url(url, params)

    def _server_now(self) -> datetime:
        return self._transport.server_now()

    def _limit_ns(self) -> int:
        """The latest instant a yielded cursor may name: the server's clock (its last
        ``Date`` header advanced by monotonic time, else ours) plus the skew."""
        now = Instant.from_datetime(self._server_now()).epoch_ns
        return now + round(self.future_skew_seconds * 1_000_000_000)

    def _capped(self, record: MlsRecord, limit_ns: int) -> Cursor:
        """The cursor after ``record``, but never past ``limit_ns``: a record stamped later is
        applied, and the cursor stops at the limit, spelled like the server's own timestamps
        (its digits and zone form) so a text-comparing server reads it right."""
        if record.modification.epoch_ns <= limit_ns:
            return self._cursor_of(record)
        return Cursor(timestamp=literal_like(limit_ns, record.modification.raw), listing_key="")

    @staticmethod
    def _page(
        records: list[MlsRecord],
        skipped: list[SkippedRecord],
        cursor: Cursor,
        *,
        complete: bool,
        limit_ns: int,
        degraded: str | None = None,
    ) -> ChangePage:
        """A page of changes; its records stamped later than ``limit_ns`` are named ``future``."""
        future = [r.listing_key for r in records if r.modification.epoch_ns > limit_ns]
        return ChangePage(
            records=records,
            skipped=skipped,
            cursor=cursor,
            complete=complete,
            future=future,
            degraded=degraded,
        )

    def _heal(self, cursor: Cursor) -> Cursor:
        """A stored cursor later than the server's clock plus the skew (written before the
        cursor was capped: one record stamped ``9999-…`` blinded the connection) is brought
        back to that limit; re-reading from there is safe, staying there misses everything."""
        limit = self._limit_ns()
        if position(cursor)[0] <= limit:
            return cursor
        healed = Cursor(timestamp=literal_like(limit, cursor.timestamp), listing_key="")
        logger.warning(
            "%s: cursor %s is later than the server's clock; restarting from %s",
            self._transport.host,
            cursor.timestamp,
            healed.timestamp,
        )
        return healed

    def _parse_page(self, body: dict[str, Any], request_url: str) -> _Page:
        values = body.get("value")
        if not isinstance(values, list):
            problem = "page has no 'value' array"
            if "error" in body:
                problem += f" but an error: {error_detail(json.dumps(body).encode())}"
            raise MlsMalformedPage(f"{self._transport.host}: {problem}")
        records: list[MlsRecord] = []
        skipped: list[SkippedRecord] = []
        now = self._server_now()
        for raw in values:
            parsed = parse_record(raw, self.profile, now=now)
            if isinstance(parsed, MlsRecord):
                records.append(parsed)
            else:
                skipped.append(parsed)
        link = control(body, "nextLink")
        if not isinstance(link, str) or not link.strip():
            return values, records, skipped, None
        resolved = resolve_link(
            link.strip(), request_url=request_url, context=control(body, "context")
        )
        return values, records, skipped, resolved

    def _follow(self, link: str, seen: set[str]) -> str:
        """Loop guard: a server that hands back a nextLink it already gave would page forever."""
        if link in seen:
            raise MlsProtocolError(
                f"{self._transport.host} repeated a nextLink; stopped to avoid a loop "
                "(cursor not advanced past what was read)"
            )
        seen.add(link)
        return link

    def _skip_empty(
        self,
        page: _Page,
        seen: set[str],
        deadline: float | None,
    ) -> _Page:
        """An empty page that still has a nextLink is not the end (a server may filter after
        paging): follow it, a bounded number of times."""
        hops = 0
        values, _, _, link = page
        while not values and link is not None:
            hops += 1
            if hops > MAX_EMPTY_PAGES:
                raise MlsProtocolError(
                    f"{self._transport.host}: {MAX_EMPTY_PAGES} empty pages in a row, each with a "
                    "nextLink; stopped"
                )
            body, url = self._get(self._follow(link, seen), None, deadline)
            page = self._parse_page(body, url)
            values, _, _, link = page
        return page

    @staticmethod
    def _key_after(prev: str, cur: str) -> bool:
        """``cur`` sorts after ``prev`` in the server's collation, as far as we can tell: binary
        order, or case-insensitive order (SQL Server's default collation sorts 'a1' < 'B2')."""
        return cur > prev or cur.casefold() > prev.casefold()

    def _check_order(self, records: list[MlsRecord], *, by_key: bool) -> None:
        """A cursor built from an unordered page could skip records: refuse it. Timestamps are
        compared as instants; keys within one timestamp only where we set the order."""
        for prev, cur in itertools.pairwise(records):
            a, b = prev.modification.epoch_ns, cur.modification.epoch_ns
            if b < a or (
                by_key and a == b and not self._key_after(prev.listing_key, cur.listing_key)
            ):
                what = (
                    f"{self.profile.change_field}, {self.profile.key_field}"
                    if by_key
                    else (self.profile.change_field)
                )
                raise MlsProtocolError(
                    f"{self._transport.host} returned a page out of {what} order; "
                    "cursor not advanced"
                )

    def _after_keyset(self, record: MlsRecord, after: Cursor) -> bool:
        ts, key = position(after)
        got = record.modification.epoch_ns
        if got != ts:
            return got > ts
        return bool(key) and record.listing_key != key and self._key_after(key, record.listing_key)

    @staticmethod
    def _cursor_of(record: MlsRecord) -> Cursor:
        return Cursor(timestamp=record.modification.raw, listing_key=record.listing_key)

    @staticmethod
    def _later(a: Cursor, b: Cursor) -> Cursor:
        return b if position(b) > position(a) else a
