"""The replication client: what changed since a cursor, and listings by key.

See docs/replication.md for the design. In one breath: changes are read in
(change timestamp, ListingKey) order from a durable keyset cursor minus an overlap window;
every yielded page carries a cursor that is safe to persist once that page is applied; a page
that was not fully read never yields, so the cursor never passes it. Deletions come from the
vendor's visibility flag or from reconciliation by key (``fetch_by_keys``).
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mls_sync.models import Cursor, Vendor
from mls_sync.netpolicy import loopback_allowed_from_env
from mls_sync.nettransport import guarded_client
from mls_sync.reso.auth import (
    DEFAULT_TOKEN_CACHE,
    Credentials,
    TokenCache,
    TokenState,
    credentials_key,
)
from mls_sync.reso.cursor import (
    after_filter,
    initial_cursor,
    literal_like,
    position,
    quote,
    shift_literal,
)
from mls_sync.reso.entity_events import EventAnchor, EventPage, EventReader
from mls_sync.reso.errors import MlsMalformedPage, MlsProtocolError, MlsQueryRefused
from mls_sync.reso.limits import (
    CircuitBreaker,
    Limiter,
    Monotonic,
    credential_fingerprint,
    shared_breaker,
    shared_limiter,
)
from mls_sync.reso.odata import control, error_detail, resolve_link, timestamp_literal
from mls_sync.reso.profiles import VendorProfile, profile_for
from mls_sync.reso.records import MlsRecord, SkippedRecord, parse_record
from mls_sync.reso.transport import Transport, build_url, check_url
from mls_sync.timeutil import Clock, Instant, utc_now

MAX_EMPTY_PAGES = 20
"""Empty pages with a nextLink followed in a row before the server is called broken."""

logger = logging.getLogger(__name__)

_Page = tuple[list[Any], list[MlsRecord], list[SkippedRecord], str | None]

__all__ = [
    "ChangePage",
    "KeyLookup",
    "ReplicationClient",
    "ReplicationTarget",
    "initial_cursor",
]


class ReplicationTarget(BaseModel):
    """Where one connection's listings live."""

    model_config = ConfigDict(frozen=True)

    vendor: Vendor
    base_url: str = Field(min_length=1)
    resource: str = "Property"
    dataset: str | None = None
    originating_system_name: str | None = None
    extra_filter: str | None = None
    """Optional OData condition AND-ed into every query (e.g. ``ListOfficeMlsId eq 'X'``)
    so a large MLS's changes are narrowed to the agent's own listings."""

    @model_validator(mode="after")
    def _vendor_needs(self) -> ReplicationTarget:
        profile = profile_for(self.vendor)
        if profile.requires_originating_system and not self.originating_system_name:
            raise ValueError(f"vendor {self.vendor} needs originating_system_name")
        profile.resource_path(self.resource, self.dataset)
        return self


class ChangePage(BaseModel):
    model_config = ConfigDict(frozen=True)

    records: list[MlsRecord]
    skipped: list[SkippedRecord]
    cursor: Cursor
    """Safe to persist once this page's records are applied."""
    complete: bool
    """True on the last page of this run of changes."""
    future: list[str] = Field(default_factory=list)
    """Keys of this page's records stamped later than the server's clock plus the skew: they
    are in ``records`` (apply them), but ``cursor`` stops at that clock (count and warn)."""
    degraded: str | None = None
    """Why this page was read in a slower safe mode (see ``ReplicationClient.degraded``)."""


@dataclass
class _Lookups:
    """What the passes of one ``fetch_by_keys`` have read so far."""

    found: dict[str, MlsRecord] = field(default_factory=dict)
    present_but_bad: set[str] = field(default_factory=set)
    """Returned but unreadable: it exists, so it is never called a deletion."""
    skipped: list[SkippedRecord] = field(default_factory=list)

    def unanswered(self, keys: Sequence[str]) -> list[str]:
        return [k for k in keys if k not in self.found and k not in self.present_but_bad]


class KeyLookup(BaseModel):
    model_config = ConfigDict(frozen=True)

    found: dict[str, MlsRecord]
    """By the key asked for (ListingKey, or ListingId where the vendor looks up by it)."""
    missing: list[str]
    """Asked for, not returned twice in a row: the listing left the feed (→ deleted)."""
    skipped: list[SkippedRecord]


class ReplicationClient:
    """One MLS connection. Not thread-safe; make one per connection per invocation (the rate
    limiter, breaker and token cache it uses are shared per process)."""

    def __init__(
        self,
        target: ReplicationTarget,
        credentials: Credentials,
        *,
        http: httpx.Client | None = None,
        clock: Clock = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        limiter: Limiter | None = None,
        breaker: CircuitBreaker | None = None,
        monotonic: Monotonic = time.monotonic,
        token_cache: TokenCache | None = None,
        profile: VendorProfile | None = None,
        timeout: float = 10.0,
        max_attempts: int = 5,
        allow_loopback: bool | None = None,
        future_skew_seconds: float | None = None,
    ) -> None:
        self.target = target
        self.profile = profile or profile_for(target.vendor)
        self.future_skew_seconds = (
            self.profile.future_skew_seconds if future_skew_seconds is None else future_skew_seconds
        )
        self._degraded: str | None = None
        loopback = loopback_allowed_from_env() if allow_loopback is None else allow_loopback
        base = check_url(target.base_url, allow_loopback=loopback)
        self.url = f"{base}/{self.profile.resource_path(target.resource, target.dataset)}"
        key = credentials_key(credentials)
        connection = credential_fingerprint(
            target.vendor, base, self.url, target.originating_system_name or ""
        )
        self._owns_http = http is None
        self._transport = Transport(
            # Connections only where the outbound policy allows, checked on the address.
            http=http or guarded_client(allow_loopback=loopback),
            base_url=base,
            profile=self.profile,
            tokens=TokenState(credentials, clock, token_cache or DEFAULT_TOKEN_CACHE),
            limiter=limiter
            or shared_limiter(f"{target.vendor}:{key}", self.profile.quotas, monotonic=monotonic),
            breaker=breaker or shared_breaker(connection, monotonic=monotonic),
            clock=clock,
            sleep=sleep,
            monotonic=monotonic,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not security
            timeout=timeout,
            max_attempts=max_attempts,
            allow_loopback=loopback,
        )
        self._use_in = self.profile.supports_in
        self._events = EventReader(
            get_json=self._get,
            get_text=lambda url, deadline: self._transport.get_text(url, deadline=deadline),
            events_url=f"{base}/{self.profile.resource_path('EntityEvent', target.dataset)}",
            metadata_url=f"{base}/{self.profile.resource_path('$metadata', target.dataset)}",
            page_size=self.profile.event_page,
            host=self._transport.host,
            requests_made=lambda: self._transport.requests_made,
        )

    # ------------------------------------------------------------------ counters

    @property
    def requests_made(self) -> int:
        """MLS requests sent (retries included); token requests are counted apart."""
        return self._transport.requests_made

    @property
    def token_requests(self) -> int:
        return self._transport.token_requests

    @property
    def event_requests(self) -> int:
        """Of ``requests_made``, those for EntityEvent and ``$metadata``."""
        return self._events.requests

    def server_now(self) -> datetime:
        """The MLS's clock, as its last answer's ``Date`` header gave it (advanced by the time
        since), else ours: where a new connection's cursor starts."""
        return self._transport.server_now()

    @property
    def degraded(self) -> str | None:
        """Why this client reads changes in a slower safe mode (``None``: it does not): a
        server that served a page out of the order asked for is traversed to the end, and
        the cursor moves only once everything was read. Lasts for the client's life."""
        return self._degraded

    @property
    def lookup_field(self) -> str:
        """What ``fetch_by_keys`` takes: ListingKey, or ListingId on MLS Grid."""
        return self.profile.lookup_field

    def close(self) -> None:
        if self._owns_http:
            self._transport.http.close()

    def __enter__(self) -> ReplicationClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------ helpers

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

    def _parse_page(
        self, body: dict[str, Any], request_url: str
    ) -> tuple[list[Any], list[MlsRecord], list[SkippedRecord], str | None]:
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
        page: tuple[list[Any], list[MlsRecord], list[SkippedRecord], str | None],
        seen: set[str],
        deadline: float | None,
    ) -> tuple[list[Any], list[MlsRecord], list[SkippedRecord], str | None]:
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

    # ------------------------------------------------------------------ changes

    def changes(
        self,
        cursor: Cursor | None,
        *,
        overlap_seconds: float | None = None,
        deadline: float | None = None,
    ) -> Iterator[ChangePage]:
        """Pages of records changed at or after ``cursor`` minus the overlap window, oldest
        first. Raises DeadlineReached between pages when no further request fits.

        ``cursor`` must not be None: a new connection reads its tracked listings with
        :meth:`fetch_by_keys` and starts from :func:`initial_cursor` (never a full download).
        No yielded cursor is later than the server's clock plus ``future_skew_seconds``.
        """
        if cursor is None:
            raise ValueError(
                "changes() needs a cursor: read tracked listings with fetch_by_keys() and "
                "start from initial_cursor(now)"
            )
        cursor = self._heal(cursor)
        overlap = self.profile.overlap_seconds if overlap_seconds is None else overlap_seconds
        start: Cursor = cursor
        if overlap > 0:
            start = Cursor(timestamp=shift_literal(cursor.timestamp, overlap), listing_key="")
        if self.profile.paging == "keyset":
            return self._keyset(cursor, start, deadline)
        if self.profile.paging == "anchor" and self._degraded is None:
            return self._anchor(cursor, start, deadline)
        return self._traverse(cursor, start, deadline)

    def _keyset(
        self, cursor: Cursor, start: Cursor, deadline: float | None
    ) -> Iterator[ChangePage]:
        top = self.profile.page_size
        after = start
        first = True
        seen: set[str] = set()
        while True:
            params = self._params(
                after_filter(self.profile.change_field, self.profile.key_field, after),
                top=top,
                ordered=True,
            )
            body, url = self._get(self.url, params, deadline)
            page = self._skip_empty(self._parse_page(body, url), seen, deadline)
            values, records, skipped, link = page
            self._check_order(records, by_key=True)
            if records and not first and not self._after_keyset(records[0], after):
                raise MlsProtocolError(
                    f"{self._transport.host} ignored the keyset filter; cursor not advanced"
                )
            first = False
            limit = self._limit_ns()
            if records:
                # In-run, the keyset moves on past records stamped in the future (or the run
                # would never end); the cursor handed out stops at the server's clock.
                after = self._cursor_of(records[-1])
                cursor = self._later(cursor, self._capped(records[-1], limit))
            elif values and (len(values) >= top or link is not None):
                # (A server may cap pages below our $top: a shorter page with a nextLink is
                # not the end either; staying put re-asked the same page for ever.)
                beyond = self._last_readable(values)
                if beyond is None:
                    raise MlsProtocolError(
                        f"{self._transport.host}: a full page without one readable record; "
                        "cannot place the cursor"
                    )
                # A full page of skipped records (e.g. implausible timestamps): page on past
                # them; the cursor stays (they are reported in ``skipped``).
                after = beyond
            # A short page without a nextLink is the end; a server that caps $top below ours
            # sends a nextLink, and we then continue from our own keyset, never its offset.
            complete = not values or (len(values) < top and link is None)
            yield self._page(records, skipped, cursor, complete=complete, limit_ns=limit)
            if complete:
                return

    def _last_readable(self, values: list[Any]) -> Cursor | None:
        """(timestamp, key) of the last value whose key and change timestamp can be read,
        accepted or not."""
        for raw in reversed(values):
            if not isinstance(raw, dict):
                continue
            key, stamp = raw.get(self.profile.key_field), raw.get(self.profile.change_field)
            if isinstance(key, str) and key.strip() and isinstance(stamp, str):
                try:
                    Instant.parse(stamp)
                except ValueError:
                    continue
                return Cursor(timestamp=stamp.strip(), listing_key=key.strip())
        return None

    def _degrade(self, reason: str) -> None:
        self._degraded = reason
        logger.warning(
            "%s: %s; reading changes by full traversal for this client's life (the cursor "
            "moves only once everything was read)",
            self._transport.host,
            reason,
        )

    def _anchor(
        self, cursor: Cursor, start: Cursor, deadline: float | None
    ) -> Iterator[ChangePage]:
        """Server orders by timestamp (asked with ``$orderby``), key not filterable: re-anchor
        each page at the last timestamp seen and drop the keys already seen there. A page out
        of timestamp order (a server that ignores ``$orderby`` and serves another default
        order) degrades the client to a full traversal: never a stalled connection."""
        top = self.profile.page_size
        anchor = start.timestamp
        anchor_ns = position(start)[0]
        seen_at_anchor: set[str] = set()
        next_link: str | None = None
        skip = 0
        window = 0
        """Records served since the last request we built: a server applying $top to the
        whole result pages inside that window, so it is the window that $top can cut."""
        seen: set[str] = set()
        while True:
            if next_link is not None:
                body, url = self._get(self._follow(next_link, seen), None, deadline)
            else:
                window = 0
                condition = f"{self.profile.change_field} ge {timestamp_literal(anchor)}"
                params = self._params(
                    condition, top=top, ordered=False, orderby=f"{self.profile.change_field} asc"
                )
                if skip:
                    params["$skip"] = str(skip)
                body, url = self._get(self.url, params, deadline)
            asked_past = skip > 0
            page = self._skip_empty(self._parse_page(body, url), seen, deadline)
            values, records, skipped, link = page
            window += len(values)
            try:
                self._check_order(records, by_key=False)
            except MlsProtocolError:
                self._degrade(
                    f"a page out of {self.profile.change_field} order ($orderby not honoured)"
                )
                # Everything from the start again; the cursor already handed out stays (the
                # pages before this one were in order), and moves once the traversal is whole.
                yield from self._traverse(cursor, start, deadline)
                return
            limit = self._limit_ns()
            fresh = [
                r
                for r in records
                if not (r.modification.epoch_ns == anchor_ns and r.listing_key in seen_at_anchor)
            ]
            full = len(values) >= top or link is not None
            if not values:
                full = False
            next_link = None
            if records:
                last = records[-1]
                cursor = self._later(cursor, self._capped(last, limit))
                if last.modification.epoch_ns == anchor_ns:
                    # The whole page sits on one timestamp: only the server's own paging can
                    # get past it. Offset links may shift here; overlap and reconciliation
                    # are the net for this rare case.
                    seen_at_anchor.update(r.listing_key for r in records)
                    next_link = link
                    skip = 0
                    if link is None:
                        # No nextLink: the end for a server that pages (Core 2.1 makes the link
                        # mandatory while more remains), but a server that applies $top to the
                        # whole result (OData 4.01 §11.2.6.3) sends none when $top cut it. A
                        # full page on the tie is asked past with $skip; a skipped answer with
                        # nothing new ends the run. (Ending here blinded the connection against
                        # such a server for as long as the tie lasted.)
                        if window >= top and (fresh or not asked_past):
                            skip = len(seen_at_anchor)
                            full = True
                        else:
                            full = False
                else:
                    skip = 0
                    anchor, anchor_ns = last.modification.raw, last.modification.epoch_ns
                    seen_at_anchor = {
                        r.listing_key for r in records if r.modification.epoch_ns == anchor_ns
                    }
            elif full:
                # A full page of skipped records (e.g. ``9999-…`` sentinels, which sort last):
                # no cursor to place, so page on with the server's own link, as through a run
                # of one timestamp; without one it is the end (Core 2.1). Raising here failed
                # every run while the page stayed full of them.
                next_link = link
                if link is None:
                    full = False
            complete = not full
            yield self._page(fresh, skipped, cursor, complete=complete, limit_ns=limit)
            if complete:
                return

    def _traverse(
        self, cursor: Cursor, start: Cursor, deadline: float | None
    ) -> Iterator[ChangePage]:
        """Order not ours to set: read every page from the start and move the cursor only once
        the whole traversal has been read.

        ``$top`` is a limit on the whole result in OData (4.01 §11.2.6.3), not a page size:
        the page size is asked with ``Prefer: odata.maxpagesize``, and a result exactly
        ``$top`` long may have been cut, so the traversal goes on in further windows until
        one comes back short: by key (``<key> gt <last key>``, ``$orderby=<key> asc``) where
        the key can be filtered, else by ``$skip``."""
        top = self.profile.page_size
        headers = {"Prefer": f"odata.maxpagesize={top}"}
        since = f"{self.profile.change_field} ge {timestamp_literal(start.timestamp)}"
        key_field = self.profile.key_field
        by_key = self.profile.key_filterable
        after_key: str | None = None
        skip = 0
        keyed = False  # whether this window asks for key order (the first asks for none)
        previous: list[str] | None = None
        newest = cursor
        while True:
            if keyed and after_key is not None:
                condition = f"{since} and {key_field} gt {quote(after_key)}"
            else:
                condition = since
            url = self.url
            params: dict[str, str] | None = self._params(
                condition, top=top, ordered=False, orderby=f"{key_field} asc" if keyed else None
            )
            if skip and params is not None:
                params["$skip"] = str(skip)
            seen: set[str] = set()
            count = 0
            keys: list[str] = []
            while True:
                body, asked = self._get(url, params, deadline, headers)
                values, records, skipped, link = self._parse_page(body, asked)
                count += len(values)
                keys.extend(self._raw_keys(values))
                limit = self._limit_ns()
                for record in records:
                    newest = self._later(newest, self._capped(record, limit))
                # An empty page with a nextLink is not the end; only a missing nextLink is.
                # A window exactly $top long may have been cut short by $top.
                complete = link is None and count != top
                yield self._page(
                    records,
                    skipped,
                    newest if complete else cursor,
                    complete=complete,
                    limit_ns=limit,
                    degraded=self._degraded,
                )
                if link is None:
                    break
                url, params = self._follow(link, seen), None
            if complete:
                return
            ascending = all(self._key_after(a, b) for a, b in itertools.pairwise(keys))
            if keyed and ascending and keys:
                after_key = keys[-1]  # the next window starts after the last key read
            elif by_key and not keyed:
                # The first window came in the server's order: read again from the start,
                # asking for key order, so "after the last key" means what it says.
                keyed = True
            elif by_key:
                # Key order asked for and not served: $skip windows from the start.
                by_key, keyed, after_key, skip, previous = False, False, None, 0, None
            else:
                if keys == previous:
                    raise MlsProtocolError(
                        f"{self._transport.host} ignored $skip; cursor not advanced"
                    )
                previous = keys
                skip += count

    def _raw_keys(self, values: list[Any]) -> list[str]:
        out: list[str] = []
        for raw in values:
            key = raw.get(self.profile.key_field) if isinstance(raw, dict) else None
            if isinstance(key, str) and key.strip():
                out.append(key.strip())
        return out

    # ------------------------------------------------------------------ EntityEvent

    def supports_entity_events(self, *, deadline: float | None = None) -> bool:
        """One GET of ``$metadata``: does the server offer the EntityEvent log (RCP-027)?"""
        return self._events.supports(deadline)

    def event_head(self, *, deadline: float | None = None) -> EventAnchor:
        """The newest Property event; ``EventAnchor(0, None)`` when there is none."""
        return self._events.head(deadline)

    def events_after(
        self, anchor: EventAnchor, *, deadline: float | None = None
    ) -> Iterator[EventPage]:
        """Pages of Property events after ``anchor`` (``reso/entity_events.py``); raises
        ``EventLogBroken`` when the log was reset or expired past the anchor."""
        return self._events.after(anchor, deadline)

    # ------------------------------------------------------------------ by key

    def _lookup_condition(self, keys: Sequence[str]) -> str:
        field = self.profile.lookup_field
        if self._use_in:
            return f"{field} in ({','.join(quote(k) for k in keys)})"
        return "(" + " or ".join(f"{field} eq {quote(k)}" for k in keys) + ")"

    def _batch_size(self) -> int:
        size = self.profile.max_in_batch
        if not self._use_in:
            size = min(size, self.profile.or_batch)
            if self.profile.max_or is not None:
                size = min(size, self.profile.max_or + 1)
        return max(1, min(size, self.profile.page_size))

    def _lookup_pass(self, keys: Sequence[str], deadline: float | None, into: _Lookups) -> None:
        lookup_field = self.profile.lookup_field
        size = self._batch_size()
        for i in range(0, len(keys), size):
            batch = keys[i : i + size]
            wanted = set(batch)
            url: str = self.url
            params: dict[str, str] | None = self._params(
                self._lookup_condition(batch), top=len(batch), ordered=False
            )
            seen: set[str] = set()
            while True:
                body, request_url = self._get(url, params, deadline)
                values, _, _, link = self._parse_page(body, request_url)
                now = self._server_now()
                for raw in values:
                    asked = raw.get(lookup_field) if isinstance(raw, dict) else None
                    parsed = parse_record(raw, self.profile, now=now)
                    if isinstance(parsed, SkippedRecord):
                        into.skipped.append(parsed)
                        if isinstance(asked, str) and asked in wanted:
                            # It exists, just unreadable: never call that a deletion.
                            into.present_but_bad.add(asked)
                        continue
                    by_key = lookup_field == self.profile.key_field
                    got = parsed.listing_key if by_key else parsed.listing_id
                    if got is None or got not in wanted:
                        continue
                    known = into.found.get(got)
                    if known is None or parsed.modification > known.modification:
                        into.found[got] = parsed
                if link is None:
                    break
                url, params = self._follow(link, seen), None

    def _lookup_with_fallback(
        self, keys: Sequence[str], deadline: float | None, into: _Lookups
    ) -> None:
        try:
            self._lookup_pass(keys, deadline, into)
        except MlsQueryRefused as exc:
            # ``in`` is OData 4.01; a 4.0 server answers 400 (or 501). Fall back to ``or``
            # chains for this client's life and redo the keys not yet answered.
            if not self._use_in or exc.status not in (400, 501):
                raise
            self._use_in = False
            self._lookup_pass(into.unanswered(keys), deadline, into)

    def fetch_by_keys(self, keys: Sequence[str], *, deadline: float | None = None) -> KeyLookup:
        """Current records for ``keys`` (in ``lookup_field`` terms), in ``in`` batches. A key
        not returned is asked once more before it is reported missing, so one inconsistent
        page cannot delete a listing."""
        unique = list(dict.fromkeys(k for k in keys if k))
        read = _Lookups()
        self._lookup_with_fallback(unique, deadline, read)
        missing = read.unanswered(unique)
        if missing:
            self._lookup_with_fallback(missing, deadline, read)
            missing = read.unanswered(missing)
        return KeyLookup(found=read.found, missing=missing, skipped=read.skipped)
