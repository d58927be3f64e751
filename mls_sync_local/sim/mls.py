"""The MLS simulator: a RESO Web API server on loopback for tests, benchmarks and ``make run``.

Start it in-process (``with MlsSimulator(...) as sim: sim.url``) or in the foreground with
:func:`serve_forever`. Its clock is its own (``sim.advance(seconds)``); nothing sleeps unless
latency or a hanging timeout is configured. Faults, quirks and listing changes are scripted
through methods, between or during a client's requests (``after_request`` hook).
"""

from __future__ import annotations

import base64
import bisect
import functools
import json
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, quote, unquote, unquote_plus, urlencode, urlsplit

from mls_sync.timeutil import Instant

from mls_sync_local.serving import Serving
from mls_sync_local.sim.entity_events import EventLog, PageShape, metadata_xml
from mls_sync_local.sim.event_push import EventPusher, PushAttempt, PushStyle
from mls_sync_local.sim.odata import (
    BoolOp,
    In,
    Node,
    Not,
    ODataError,
    describe,
    evaluate,
    hint,
    parse_filter,
    parse_orderby,
)

NextLinkStyle = Literal["offset", "cursor"]
LinkForm = Literal["absolute", "relative"]
ClientAuth = Literal["either", "basic", "body"]
QueryDecoding = Literal["form", "strict"]
DefaultOrder = Literal["timestamp", "key"]
TopSemantics = Literal["page", "total"]
CompareTimestamps = Literal["instant", "text"]
_DEFAULT_START = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
_TIMESTAMP_FIELDS = ("ModificationTimestamp", "BridgeModificationTimestamp")


def _row_value(
    sort_value: Callable[[SimListing, dict[str, Any], str], Any],
    name: str,
    row: tuple[SimListing, dict[str, Any]],
) -> Any:
    return sort_value(row[0], row[1], name)


def format_ns(ns: int, digits: int, offset: str) -> str:
    """An Edm.DateTimeOffset spelling of ``ns`` with ``digits`` fractional digits (truncated)
    in ``offset`` (``Z`` or ``±HH:MM``)."""
    if offset in ("Z", "z"):
        zone: timezone = UTC
    else:
        sign = -1 if offset[0] == "-" else 1
        zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
    whole, frac = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(whole, tz=zone).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{frac:09d}".ljust(digits, "0")[:digits]
    return text + offset


def _ns(value: datetime | str | int) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        return Instant.from_datetime(value).epoch_ns
    return Instant.parse(value).epoch_ns


@dataclass
class SimListing:
    key: str
    fields: dict[str, Any]
    modified_ns: int
    modified_raw: str | None = None
    """An exact spelling to serve (e.g. 7 digits); otherwise the simulator's format."""
    visible_from_ns: int | None = None
    """Late-visible: served only once the clock reaches this (its timestamp stays older)."""
    can_view: bool = True
    emit: dict[str, Any] = field(default_factory=dict)
    """Served instead of the true values (malformed records); filters use the true values."""


@dataclass(frozen=True)
class TokenLimits:
    """Per-token request quotas, MLS Grid style: a request over any of them is a violation,
    and the token is suspended (429 to everything) until the broken window ends, or for
    ``suspend_seconds``. Windows are fixed on the simulator's clock (second, minute, UTC
    hour and day)."""

    per_second: int | None = None
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    suspend_seconds: float | None = None

    def periods(self) -> list[tuple[str, int, int]]:
        """(name, seconds, limit) of each quota set."""
        named = (
            ("second", 1, self.per_second),
            ("minute", 60, self.per_minute),
            ("hour", 3600, self.per_hour),
            ("day", 86_400, self.per_day),
        )
        return [(name, seconds, limit) for name, seconds, limit in named if limit is not None]


@dataclass(frozen=True)
class LimitViolation:
    token: str
    """The token's identity: a static token's first characters, or ``client:<id>``."""
    period: str
    count: int
    at: str


@dataclass(frozen=True)
class RequestLog:
    method: str
    path: str
    params: dict[str, str]
    status: int
    at: str


@dataclass
class _Faults:
    fail_next: list[tuple[int, str | None]] = field(default_factory=list)
    throttle_next: list[str | None] = field(default_factory=list)
    timeout_next: list[float] = field(default_factory=list)
    drop_next: int = 0
    malformed_next: int = 0
    drip_next: list[tuple[int, float]] = field(default_factory=list)  # (chunk bytes, delay)
    huge_next: list[int] = field(default_factory=list)  # page sizes in bytes
    fail_rate: float = 0.0
    fail_status: int = 503
    rate_limit: tuple[int, float, bool] | None = None  # (max, per seconds, HTTP-date form)


_INDEXED = ("ListingKey", "ListingId")


@dataclass
class _Index:
    by_time: list[tuple[int, str]]
    by_field: dict[str, dict[Any, list[str]]]

    @classmethod
    def build(cls, listings: Mapping[str, SimListing]) -> _Index:
        by_field: dict[str, dict[Any, list[str]]] = {name: {} for name in _INDEXED}
        for key, lst in listings.items():
            for name in _INDEXED:
                by_field[name].setdefault(lst.fields.get(name), []).append(key)
        return cls(sorted((lst.modified_ns, k) for k, lst in listings.items()), by_field)


class MlsSimulator:
    """A RESO Web API server with a scripted feed.

    ``vendor`` selects quirks: ``mlsgrid`` requires exactly one lowercase
    ``OriginatingSystemName eq`` filter, refuses ListingKey in filters and more than 5 ``or``,
    orders by ModificationTimestamp unless ``$orderby`` says otherwise, and serves ``MlgCanView``;
    ``bridge`` serves ``BridgeModificationTimestamp`` under ``/{dataset}/Property``.

    Spec variants other servers may choose (defaults are the common case):
    ``client_auth`` which client authentications the token endpoint accepts (RFC 6749 §2.3.1:
    Basic MUST be supported, the body form MAY; ``body`` is a non-conformant but real server),
    ``expires_form`` how ``expires_in`` is written (``number``, ``string`` or ``missing``),
    ``issued_type`` the token_type issued, ``link_form`` absolute or relative nextLink/context
    URLs (OData JSON 4.01 §4.6), ``odata_prefix`` False for 4.01 ``@nextLink``/``@context``,
    ``query_decoding`` ``strict`` for RFC 3986 decoding (a ``+`` is a plus, a ``%24filter`` key is
    not ``$filter`` and is ignored as a custom option), ``supports_in`` False for an OData 4.0
    server answering 400 to ``in``.
    ``default_order`` what is served without ``$orderby`` (``None``: the vendor's,
    ModificationTimestamp for mlsgrid, ListingKey for the others; a database with a primary
    key serves ``key``),
    ``ignore_orderby`` True for a server that serves its default order whatever ``$orderby``
    says (MLS Grid as the simulator used to model it), ``top_semantics`` ``total`` for a server
    that applies ``$top`` to the whole result (OData 4.01 §11.2.6.3) and pages inside it at
    ``page_cap`` (or a smaller ``Prefer: odata.maxpagesize``, answered with
    ``Preference-Applied``), ``compare_timestamps`` ``text`` for a server that compares
    DateTimeOffset filter literals with the served strings as text (SQLite).

    EntityEvent (RCP-027; see ``entity_events.py``): ``entity_events`` True serves
    ``<root>/EntityEvent`` (else 404) and names it in ``<root>/$metadata``; every scripted write
    (``add_listing``, ``add_many``, ``set_status``, ``touch``, ``hide``, ``remove_listing``)
    appends a Property event. ``event_compaction`` serves only the newest event per record
    (gaps), ``event_step`` > 1 makes sequences sparse, ``event_short_pages`` ends a page cut by
    ``$top`` without a nextLink although more exist; ``add_lookup_events``,
    ``reset_event_log`` and ``expire_events`` script noise and broken logs, ``push_to`` pushes
    events to a consumer (RCP-028).
    """

    def __init__(
        self,
        *,
        vendor: str = "reso",
        host: str = "127.0.0.1",
        port: int = 0,
        start: datetime = _DEFAULT_START,
        page_cap: int = 1000,
        default_top: int = 100,
        nextlink: NextLinkStyle = "offset",
        ts_digits: int = 3,
        ts_offset: str = "Z",
        token_lifetime: float = 3600.0,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",  # noqa: S107 - a simulator's fixed test secret
        static_tokens: tuple[str, ...] = ("sim-static-token",),
        originating_system: str = "actris",
        dataset: str | None = None,
        latency: float = 0.0,
        seed: int = 0,
        client_auth: ClientAuth = "either",
        expires_form: Literal["number", "string", "missing"] = "number",
        issued_type: str = "Bearer",
        link_form: LinkForm = "absolute",
        odata_prefix: bool = True,
        query_decoding: QueryDecoding = "form",
        supports_in: bool = True,
        default_order: DefaultOrder | None = None,
        ignore_orderby: bool = False,
        top_semantics: TopSemantics = "page",
        compare_timestamps: CompareTimestamps = "instant",
        entity_events: bool = False,
        event_compaction: bool = False,
        event_step: int = 1,
        event_short_pages: bool = False,
    ) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("the simulator binds to loopback only")
        self.vendor = vendor
        self.host = host
        self._port = port
        self.page_cap = page_cap
        self.default_top = default_top
        self.nextlink = nextlink
        self.ts_digits = ts_digits
        self.ts_offset = ts_offset
        self.token_lifetime = token_lifetime
        self.client_id = client_id
        self.client_secret = client_secret
        self.static_tokens = set(static_tokens)
        self.originating_system = originating_system
        self.dataset = dataset if dataset is not None else ("test" if vendor == "bridge" else None)
        self.latency = latency
        self.client_auth = client_auth
        self.expires_form = expires_form
        self.issued_type = issued_type
        self.link_form = link_form
        self.odata_prefix = odata_prefix
        self.query_decoding = query_decoding
        self.supports_in = supports_in
        self.default_order: DefaultOrder = default_order or (
            "timestamp" if vendor == "mlsgrid" else "key"
        )
        self.ignore_orderby = ignore_orderby
        self.top_semantics = top_semantics
        self.compare_timestamps = compare_timestamps
        self.events: EventLog | None = (
            EventLog(compaction=event_compaction, step=event_step, short_pages=event_short_pages)
            if entity_events
            else None
        )
        self._pusher: EventPusher | None = None
        self.hour_quota: int | None = None
        """Trestle-style quota headers: requests left this hour (None: no headers)."""
        self.rng = random.Random(seed)  # noqa: S311 - fault injection, not security
        self.change_field = (
            "BridgeModificationTimestamp" if vendor == "bridge" else "ModificationTimestamp"
        )
        self.visibility_field = "MlgCanView" if vendor == "mlsgrid" else None
        self.after_request: Callable[[RequestLog], None] | None = None
        self.requests = 0
        self.token_requests = 0
        self.log: list[RequestLog] = []
        self._own_ns = _ns(start)
        self._time_source: Callable[[], float] | None = None
        self.token_limits: TokenLimits | None = None
        self.limit_violations: list[LimitViolation] = []
        """Requests that went over a token's quota (what would suspend a real token)."""
        self.suspended_refusals = 0
        """Requests refused with 429 because their token was suspended."""
        self._limit_windows: dict[tuple[str, int], tuple[int, int]] = {}
        self._suspended_until: dict[str, int] = {}
        self._listings: dict[str, SimListing] = {}
        self._withheld: dict[str, SimListing] = {}
        self._index: _Index | None = None
        self._tokens: dict[str, int] = {}
        self._faults = _Faults()
        self._window: list[int] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._serving: Serving | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> MlsSimulator:
        sim = self

        class Handler(_Handler):
            simulator = sim

        self._server = ThreadingHTTPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        self._serving = Serving(self._server, name="mls-sim", poll_interval=0.05)
        self._serving.start()
        return self

    def stop(self) -> None:
        if self._pusher is not None:
            self._pusher.stop()
            self._pusher = None
        if self._serving is not None:
            self._serving.stop()
            self._serving = None
            self._server = None

    def __enter__(self) -> MlsSimulator:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The service root: a client's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def resource_path(self) -> str:
        return f"/{self.dataset}/Property" if self.dataset else "/Property"

    @property
    def service_root(self) -> str:
        return f"{self.url}/{self.dataset}" if self.dataset else self.url

    # ------------------------------------------------------------------ clock

    @property
    def _now_ns(self) -> int:
        source = self._time_source
        return round(source() * 1_000_000_000) if source is not None else self._own_ns

    @_now_ns.setter
    def _now_ns(self, value: int) -> None:
        if self._time_source is not None:
            raise RuntimeError("the simulator follows another clock; move that one")
        self._own_ns = value

    def follow(self, source: Callable[[], float] | None) -> None:
        """Reads the time from ``source`` (epoch seconds), e.g. a virtual clock shared with
        the clients under test; ``None`` goes back to the simulator's own clock (at the time
        it had). While following, ``advance`` and ``set_time`` are refused."""
        with self._lock:
            self._time_source = source

    @property
    def now(self) -> datetime:
        with self._lock:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self._now_ns // 1000)

    @property
    def now_ns(self) -> int:
        with self._lock:
            return self._now_ns

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now_ns += round(seconds * 1_000_000_000)

    def set_time(self, when: datetime) -> None:
        with self._lock:
            self._now_ns = _ns(when)

    def clock(self) -> datetime:
        """A Clock for clients that should share the simulator's time."""
        return self.now

    # ------------------------------------------------------------------ scripting

    def add_listing(
        self,
        key: str,
        status: str | None = "Active",
        *,
        modified: datetime | str | int | None = None,
        listing_id: str | None = None,
        mls_status: str | None = None,
        visible_from: datetime | str | int | None = None,
        fields: Mapping[str, Any] | None = None,
        emit: Mapping[str, Any] | None = None,
    ) -> SimListing:
        """Adds or replaces a listing. ``modified`` as a string is served exactly as given."""
        with self._lock:
            values: dict[str, Any] = {
                "ListingKey": key,
                "ListingId": listing_id or key,
                "StandardStatus": status,
                "MlsStatus": mls_status or status,
                "StatusChangeTimestamp": None,
                "CloseDate": None,
                "OriginatingSystemName": self.originating_system,
            }
            values.update(fields or {})
            listing = SimListing(
                key=key,
                fields=values,
                modified_ns=self._now_ns if modified is None else _ns(modified),
                modified_raw=modified if isinstance(modified, str) else None,
                visible_from_ns=None if visible_from is None else _ns(visible_from),
                emit=dict(emit or {}),
            )
            self._listings[key] = listing
            self._index = None
            self._wrote(key)
            return listing

    def add_many(self, count: int, *, prefix: str = "L", status: str = "Active") -> list[str]:
        """``count`` listings modified at the current instant (keys zero-padded, ordered)."""
        width = max(6, len(str(count)))
        keys = [f"{prefix}{i:0{width}d}" for i in range(count)]
        with self._lock:
            for key in keys:
                self.add_listing(key, status)
        return keys

    def listing(self, key: str) -> SimListing:
        with self._lock:
            return self._listings[key]

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._listings)

    def _touch(self, listing: SimListing, at: datetime | str | int | None) -> None:
        self._index = None
        listing.modified_ns = self._now_ns if at is None else _ns(at)
        listing.modified_raw = at if isinstance(at, str) else None
        self._wrote(listing.key)

    def set_status(
        self,
        key: str,
        status: str,
        *,
        at: datetime | str | int | None = None,
        mls_status: str | None = None,
    ) -> None:
        """Changes a listing's status; its timestamp becomes ``at`` (default: now)."""
        with self._lock:
            listing = self._listings[key]
            listing.fields["StandardStatus"] = status
            listing.fields["MlsStatus"] = mls_status or status
            listing.fields["StatusChangeTimestamp"] = format_ns(
                self._now_ns if at is None else _ns(at), 3, "Z"
            )
            if status == "Closed":
                listing.fields["CloseDate"] = self.now.date().isoformat()
            self._touch(listing, at)

    def touch(self, key: str, *, at: datetime | str | int | None = None) -> None:
        """Re-stamps a listing without changing its status (a vendor's mass re-stamp)."""
        with self._lock:
            self._touch(self._listings[key], at)

    def remove_listing(self, key: str) -> None:
        """The listing vanishes from the feed (only reconciliation by key can tell)."""
        with self._lock:
            if self._listings.pop(key, None) is not None:
                self._wrote(key)
            self._index = None

    def withhold(self, keys: Iterable[str]) -> None:
        """The listings drop out of every answer, unchanged (an MLS that loses records for a
        while: by-key lookups find nothing), until ``give_back``."""
        with self._lock:
            for key in keys:
                listing = self._listings.pop(key, None)
                if listing is not None:
                    self._withheld[key] = listing
            self._index = None

    def give_back(self) -> list[str]:
        """The withheld listings are served again exactly as they were (same timestamps: an
        incremental read does not see them come back, a lookup by key does)."""
        with self._lock:
            keys = sorted(self._withheld)
            self._listings.update(self._withheld)
            self._withheld.clear()
            self._index = None
            return keys

    def hide(self, key: str, *, at: datetime | str | int | None = None) -> None:
        """MLS Grid style: ``MlgCanView`` false and a new timestamp. Vendors without a
        visibility field simply stop serving the listing."""
        with self._lock:
            if self.visibility_field is None:
                if self._listings.pop(key, None) is not None:
                    self._wrote(key)
                self._index = None
                return
            listing = self._listings[key]
            listing.can_view = False
            self._touch(listing, at)

    # ------------------------------------------------------------------ EntityEvent

    def _wrote(self, key: str) -> None:
        """One successful write of a Property record: one event (when the log is on)."""
        if self.events is not None:
            self.events.append("Property", [key])

    def _event_log(self) -> EventLog:
        if self.events is None:
            raise RuntimeError("EntityEvent is off: MlsSimulator(entity_events=True)")
        return self.events

    def add_lookup_events(self, count: int, *, resource: str = "Lookup") -> None:
        """``count`` events of another resource (a fresh reference server starts with
        thousands of Lookup events): noise sharing the sequence."""
        with self._lock:
            log = self._event_log()
            log.append(resource, [f"{resource}-{log.last_sequence + i}" for i in range(count)])

    def reset_event_log(self) -> None:
        """The log restarts empty at sequence 1 (a spec violation real servers commit)."""
        with self._lock:
            self._event_log().reset()

    def expire_events(self, *, before: int) -> int:
        """Drops the events below sequence ``before`` (retention); returns how many."""
        with self._lock:
            return self._event_log().expire(before)

    def push_to(
        self,
        url: str,
        token: str,
        *,
        style: PushStyle = "reso",
        batch: int = 100,
        **options: Any,
    ) -> EventPusher:
        """From now on, events appended are POSTed to ``url`` (loopback only) by a background
        thread (see ``event_push.py``; ``options``: ``source``, ``max_attempts``,
        ``timeout``, ``sleep``, ``clock``). Replaces an earlier push target."""
        log = self._event_log()
        pusher = EventPusher(url, token, style=style, batch=batch, **options)
        with self._lock:
            if self._pusher is not None:
                self._pusher.stop()
                log.listeners.remove(self._pusher.enqueue)
            self._pusher = pusher
            log.listeners.append(pusher.enqueue)
        return pusher

    def flush_push(self, timeout: float = 5.0) -> bool:
        """Waits until every pushed event was delivered or given up (False on timeout)."""
        pusher = self._pusher
        return True if pusher is None else pusher.flush(timeout)

    @property
    def push_attempts(self) -> list[PushAttempt]:
        return [] if self._pusher is None else list(self._pusher.attempts)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self, count: int = 1, *, status: int = 503, retry_after: str | None = None
    ) -> None:
        with self._lock:
            self._faults.fail_next.extend([(status, retry_after)] * count)

    def throttle_next(self, count: int = 1, *, retry_after: str | None = "1") -> None:
        """The next ``count`` MLS requests get 429 with this ``Retry-After`` (seconds or an
        HTTP-date string; None for no header)."""
        with self._lock:
            self._faults.throttle_next.extend([retry_after] * count)

    def set_fail_rate(self, rate: float, *, status: int = 503) -> None:
        """Each MLS request fails with ``status`` with probability ``rate`` (seeded RNG)."""
        with self._lock:
            self._faults.fail_rate = rate
            self._faults.fail_status = status

    def set_rate_limit(
        self, max_requests: int, per_seconds: float, *, http_date: bool = False
    ) -> None:
        """More than ``max_requests`` in ``per_seconds`` of simulator time → 429 with a
        Retry-After until the window frees (delta-seconds, or an HTTP-date)."""
        with self._lock:
            self._faults.rate_limit = (max_requests, per_seconds, http_date)

    def set_token_limits(
        self,
        *,
        per_second: int | None = None,
        per_minute: int | None = None,
        per_hour: int | None = None,
        per_day: int | None = None,
        suspend_seconds: float | None = None,
    ) -> None:
        """Enforces per-token quotas (see :class:`TokenLimits`) and counts every request that
        goes over in ``limit_violations``; no arguments: limits off (counts kept)."""
        limits = TokenLimits(per_second, per_minute, per_hour, per_day, suspend_seconds)
        with self._lock:
            self.token_limits = limits if limits.periods() else None
            self._limit_windows.clear()
            self._suspended_until.clear()

    def timeout_next(self, count: int = 1, *, hold: float = 0.5) -> None:
        """The next requests hang ``hold`` real seconds, then close without an answer."""
        with self._lock:
            self._faults.timeout_next.extend([hold] * count)

    def drop_next(self, count: int = 1) -> None:
        """The next requests close the connection without an answer."""
        with self._lock:
            self._faults.drop_next += count

    def malformed_next(self, count: int = 1) -> None:
        """The next pages are cut off mid-JSON (status 200)."""
        with self._lock:
            self._faults.malformed_next += count

    def drip_next(self, count: int = 1, *, chunk: int = 64, delay: float = 0.05) -> None:
        """The next pages (status 200) are written ``chunk`` bytes at a time with ``delay``
        real seconds between pieces: a slow-drip server whose every read is quick."""
        with self._lock:
            self._faults.drip_next.extend([(max(1, chunk), delay)] * count)

    def huge_next(self, count: int = 1, *, size: int = 60_000_000) -> None:
        """The next pages (status 200) are padded with whitespace to ``size`` bytes (still
        valid JSON) and sent chunked, without a Content-Length the client could check."""
        with self._lock:
            self._faults.huge_next.extend([size] * count)

    def clear_faults(self) -> None:
        """Removes every pending or standing fault (rates, queues, rate limit)."""
        with self._lock:
            self._faults = _Faults()

    def expire_tokens(self) -> None:
        """Every issued OAuth2 token stops working now (revoked or expired early)."""
        with self._lock:
            self._tokens.clear()

    # ------------------------------------------------------------------ serving

    def _format_ts(self, listing: SimListing) -> str:
        if listing.modified_raw is not None:
            return listing.modified_raw
        return format_ns(listing.modified_ns, self.ts_digits, self.ts_offset)

    def _served_ns(self, listing: SimListing) -> int:
        """The instant of the timestamp as served (truncated to ``ts_digits``): what filters
        compare, so also what ``$orderby`` sorts (OData orders by the property's value; sorting
        by the hidden full precision put keys out of order within one served timestamp)."""
        if listing.modified_raw is not None:
            return int(Instant.parse(listing.modified_raw).epoch_ns)
        step = int(10 ** (9 - min(self.ts_digits, 9)))
        return listing.modified_ns - listing.modified_ns % step

    def _true_record(self, listing: SimListing) -> dict[str, Any]:
        record = dict(listing.fields)
        record[self.change_field] = self._format_ts(listing)
        if self.change_field != "ModificationTimestamp":
            record.setdefault("ModificationTimestamp", self._format_ts(listing))
        if self.visibility_field:
            record[self.visibility_field] = listing.can_view
        return record

    def _client_auth(
        self, form: Mapping[str, str], authorization: str | None
    ) -> tuple[str, str] | str:
        """(client_id, client_secret) from the one method the client used, or an error code.
        RFC 6749 §2.3: more than one method in a request is refused."""
        basic = None
        if authorization and authorization[:6].lower() == "basic ":
            try:
                pair = base64.b64decode(authorization[6:].strip(), validate=True).decode()
            except ValueError:
                return "invalid_client"
            user, sep, password = pair.partition(":")
            if not sep:
                return "invalid_client"
            basic = (unquote_plus(user), unquote_plus(password))
        in_body = "client_secret" in form
        if basic is not None and in_body:
            return "invalid_request"
        if basic is not None:
            return basic if self.client_auth in ("either", "basic") else "invalid_client"
        if in_body:
            if self.client_auth == "basic":
                return "invalid_client"
            return form.get("client_id", ""), form.get("client_secret", "")
        return "invalid_client"

    def _issue_token(
        self, form: Mapping[str, str], authorization: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        found = self._client_auth(form, authorization)
        if isinstance(found, str):
            return (401 if found == "invalid_client" else 400), {"error": found}
        client_id, client_secret = found
        if not (
            secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(client_secret, self.client_secret)
        ):
            return 401, {"error": "invalid_client"}
        token = "sim-" + secrets.token_urlsafe(12)
        self._tokens[token] = self._now_ns + round(self.token_lifetime * 1e9)
        body: dict[str, Any] = {"access_token": token, "token_type": self.issued_type}
        if self.expires_form == "number":
            body["expires_in"] = self.token_lifetime
        elif self.expires_form == "string":
            body["expires_in"] = str(int(self.token_lifetime))
        return 200, body

    def _authorised(self, header: str | None) -> bool:
        # RFC 6750 §2.1 / RFC 7235: the scheme name is case-insensitive.
        if not header or header[:7].lower() != "bearer ":
            return False
        token = header[7:].strip()
        if token in self.static_tokens:
            return True
        expires = self._tokens.get(token)
        return expires is not None and self._now_ns < expires

    def _token_identity(self, authorization: str | None) -> str:
        token = (authorization or "")[7:].strip()
        if token in self.static_tokens:
            return token[:12]
        return f"client:{self.client_id}"  # issued tokens count against their client

    def _over_token_limits(self, authorization: str | None) -> str | None:
        """Retry-After seconds when the token is suspended or this request breaks one of its
        quotas (then counted as a violation and the token suspended); counts the request."""
        limits = self.token_limits
        if limits is None:
            return None
        who = self._token_identity(authorization)
        now = self._now_ns
        suspended = self._suspended_until.get(who, 0)
        broken: list[tuple[str, int, int]] = []
        for name, seconds, limit in limits.periods():
            window = now // (seconds * 1_000_000_000)
            seen_window, count = self._limit_windows.get((who, seconds), (window, 0))
            count = count + 1 if seen_window == window else 1
            self._limit_windows[(who, seconds)] = (window, count)
            if count > limit:
                broken.append((name, seconds, count))
        if now < suspended:
            self.suspended_refusals += 1
            return str(max(1, -(-(suspended - now) // 1_000_000_000)))
        if not broken:
            return None
        until = now
        for name, seconds, count in broken:
            self.limit_violations.append(LimitViolation(who, name, count, self.now.isoformat()))
            end = (now // (seconds * 1_000_000_000) + 1) * seconds * 1_000_000_000
            until = max(until, end)
        if limits.suspend_seconds is not None:
            until = now + round(limits.suspend_seconds * 1e9)
        self._suspended_until[who] = until
        return str(max(1, -(-(until - now) // 1_000_000_000)))

    def _rate_limited(self) -> str | None:
        """Retry-After value when the rate window is full, else None (and count this one)."""
        rule = self._faults.rate_limit
        if rule is None:
            return None
        limit, per, http_date = rule
        window_ns = round(per * 1e9)
        self._window = [t for t in self._window if t > self._now_ns - window_ns]
        if len(self._window) >= limit:
            free_at = self._window[0] + window_ns
            wait = max(1, -(-(free_at - self._now_ns) // 1_000_000_000))
            if http_date:
                # HTTP-dates have whole seconds: round up so the date is not before the end.
                free = self.now + timedelta(seconds=wait)
                if free.microsecond:
                    free += timedelta(microseconds=1_000_000 - free.microsecond)
                return format_datetime(free, usegmt=True)
            return str(wait)
        self._window.append(self._now_ns)
        return None

    def _candidates(self, node: Node | None) -> list[SimListing]:
        """Listings that can match ``node``, narrowed by an index the way a real server's
        would be (otherwise a 100,000-listing benchmark measures the simulator's scan)."""
        if node is None:
            return list(self._listings.values())
        found = hint(node, _TIMESTAMP_FIELDS, _INDEXED)
        if self._index is None:
            self._index = _Index.build(self._listings)
        if found.values is not None:
            name, wanted = found.values
            table = self._index.by_field[name]
            return [self._listings[k] for v in wanted for k in table.get(v, ())]
        if found.ts_min is not None and self.compare_timestamps == "instant":
            # (Compared as text, a literal's instant is no bound on what matches.)
            at = bisect.bisect_left(self._index.by_time, (found.ts_min, ""))
            return [self._listings[k] for _, k in self._index.by_time[at:]]
        return list(self._listings.values())

    def _quota_headers(self) -> dict[str, str]:
        if self.hour_quota is None:
            return {}
        self.hour_quota = max(0, self.hour_quota - 1)
        reset = self.now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        return {
            "Hour-Quota-Limit": "7200",
            "Hour-Quota-Available": str(self.hour_quota),
            "Hour-Quota-ResetTime": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def _vendor_quirks(self, filter_text: str | None) -> str | None:
        """An error message when the query breaks the vendor's rules."""
        if not self.supports_in and filter_text and _has_in(parse_filter(filter_text)):
            return "Syntax error: the 'in' operator is not supported (OData 4.0)"
        if self.vendor != "mlsgrid":
            return None
        if not filter_text:
            return "MLS Grid requires an OriginatingSystemName filter"
        info = describe(parse_filter(filter_text))
        osn = [v for f, v in info.equalities if f == "OriginatingSystemName"]
        if len(osn) != 1 or osn[0] != self.originating_system.lower():
            return "exactly one lowercase OriginatingSystemName eq filter is required"
        if "ListingKey" in info.fields:
            return "ListingKey is not a searchable field"
        if info.or_count > 5:
            return "at most 5 'or' operators"
        return None

    def route(self, path: str) -> str | None:
        """What a request path names: ``Property``, ``EntityEvent``, ``$metadata`` or None."""
        root = f"/{self.dataset}" if self.dataset else ""
        path = unquote(path)
        if path == self.resource_path:
            return "Property"
        if path == f"{root}/$metadata":
            return "$metadata"
        if path == f"{root}/EntityEvent" and self.events is not None:
            return "EntityEvent"
        return None

    def answer(
        self, route: str, params: Mapping[str, str], *, max_page_size: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One query on the resource ``route`` names (no faults, no auth). ``$metadata`` comes
        back as ``{"@sim.xml": <CSDL>}``, which the handler sends as XML."""
        if route == "$metadata":
            extra: tuple[tuple[str, str], ...] = (
                (("MlgCanView", "Edm.Boolean"),) if self.visibility_field else ()
            )
            if self.change_field != "ModificationTimestamp":
                extra += ((self.change_field, "Edm.DateTimeOffset"),)
            xml = metadata_xml(extra_fields=extra, entity_events=self.events is not None)
            return 200, {"@sim.xml": xml}
        if route == "EntityEvent":
            shape = PageShape(
                page_cap=self.page_cap,
                default_top=self.default_top,
                odata_prefix=self.odata_prefix,
                link_base=f"{self.service_root}/EntityEvent",
            )
            return self._event_log().query(params, shape, max_page_size=max_page_size)
        return self.query(params, max_page_size=max_page_size)

    def query(
        self, params: Mapping[str, str], *, max_page_size: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Answers one Property query (no faults, no auth): (status, body). ``max_page_size``
        is the client's ``Prefer: odata.maxpagesize`` (honoured when smaller than the cap)."""
        filter_text = params.get("$filter")
        try:
            quirk = self._vendor_quirks(filter_text)
            if quirk:
                return 400, {"error": {"code": "400", "message": quirk}}
            node = parse_filter(filter_text) if filter_text else None
            orderby = parse_orderby(params["$orderby"]) if params.get("$orderby") else []
            top = int(params.get("$top", self.default_top))
            skip = int(params.get("$skip", "0"))
        except (ODataError, ValueError) as exc:
            return 400, {"error": {"code": "400", "message": str(exc)}}
        if top < 0 or skip < 0:
            return 400, {"error": {"code": "400", "message": "negative $top or $skip"}}
        if self.ignore_orderby:
            orderby = []  # served in its default order whatever was asked
        listings = [
            lst
            for lst in self._candidates(node)
            if (lst.visible_from_ns is None or lst.visible_from_ns <= self._now_ns)
        ]
        rows: list[tuple[SimListing, dict[str, Any]]] = []
        for lst in listings:
            record = self._true_record(lst)
            if node is None or evaluate(
                node, record, text_timestamps=self.compare_timestamps == "text"
            ):
                rows.append((lst, record))

        def sort_value(lst: SimListing, record: dict[str, Any], name: str) -> Any:
            if name in _TIMESTAMP_FIELDS:
                return self._served_ns(lst)
            value = record.get(name)
            return "" if value is None else value

        # Key first, then stable sorts: ties end in key order, the order a $skiptoken
        # (sort values + key) continues from.
        rows.sort(key=lambda r: r[0].key)
        if orderby:
            for name, desc in reversed(orderby):
                rows.sort(key=functools.partial(_row_value, sort_value, name), reverse=desc)
        elif self.default_order == "timestamp":
            rows.sort(key=lambda r: self._served_ns(r[0]))
        sort_names = [n for n, _ in orderby] or (
            [self.change_field] if self.default_order == "timestamp" else ["ListingKey"]
        )
        token = params.get("$skiptoken")
        if token:
            try:
                after = json.loads(base64.urlsafe_b64decode(token.encode()))
            except ValueError:
                return 400, {"error": {"code": "400", "message": "bad $skiptoken"}}
            rows = [
                r
                for r in rows
                if [sort_value(r[0], r[1], n) for n in sort_names] + [r[0].key] > after
            ]
        cap = self.page_cap if max_page_size is None else min(self.page_cap, max_page_size)
        total = self.top_semantics == "total"
        if total and "$top" not in params:
            top = len(rows)
        page_size = min(top, cap)
        page = rows[skip : skip + page_size]
        more = len(rows) > skip + page_size
        if total:
            # $top limits the whole result; the nextLink carries what is left of it.
            more = len(rows) > skip + len(page) and top > len(page)
        select = [s.strip() for s in params.get("$select", "").split(",") if s.strip()]
        values: list[dict[str, Any]] = []
        for lst, record in page:
            served = {**record, **lst.emit}
            if select:
                served = {k: served.get(k) for k in select if k in served or k in record}
            values.append(served)
        prefix = "@odata." if self.odata_prefix else "@"
        context = "$metadata#Property"
        body: dict[str, Any] = {
            f"{prefix}context": context
            if self.link_form == "relative"
            else f"{self.service_root}/{context}",
            "value": values,
        }
        if more:
            rest = {k: v for k, v in params.items() if k not in ("$skip", "$skiptoken")}
            if total:
                rest["$top"] = str(top - len(page))
            if self.nextlink == "cursor" and page:
                lst, record = page[-1]
                after_vals = [sort_value(lst, record, n) for n in sort_names] + [lst.key]
                # The token says where the next page starts: a $skip of the first request is
                # not applied again (it would skip past rows never served).
                rest["$skiptoken"] = base64.urlsafe_b64encode(
                    json.dumps(after_vals).encode()
                ).decode()
            else:
                rest["$skip"] = str(skip + len(page))
            query = urlencode(rest, quote_via=quote)
            body[f"{prefix}nextLink"] = (
                f"Property?{query}"
                if self.link_form == "relative"
                else f"{self.url}{self.resource_path}?{query}"
            )
        return 200, body


def _has_in(node: Node) -> bool:
    if isinstance(node, In):
        return True
    if isinstance(node, BoolOp):
        return _has_in(node.left) or _has_in(node.right)
    if isinstance(node, Not):
        return _has_in(node.inner)
    return False


def _strict_params(query: str) -> dict[str, str]:
    """RFC 3986 query decoding as a strict OData server does it: ``+`` stays a plus, and a key
    is matched as written (``%24filter`` is not ``$filter``)."""
    params: dict[str, str] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        params[key] = unquote(value)
    return params


def _max_page_size(prefer: str | None) -> int | None:
    """``odata.maxpagesize=N`` (4.01 also ``maxpagesize=N``) from a ``Prefer`` header."""
    for part in (prefer or "").split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() in ("odata.maxpagesize", "maxpagesize"):
            try:
                size = int(value.strip().strip('"'))
            except ValueError:
                return None
            return size if size > 0 else None
    return None


def _retry_header(value: str | None) -> dict[str, str]:
    return {"Retry-After": value} if value else {}


class _Handler(BaseHTTPRequestHandler):
    simulator: MlsSimulator
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without this, Nagle and delayed ACKs add
    # ~40 ms to every request.
    disable_nagle_algorithm = True

    def log_message(self, *_: Any) -> None:
        # Quiet: tests and the demo print their own summaries.
        return

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header on the simulator's clock (clients read the server's time from
        it), not the host's."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return format_datetime(self.simulator.now.replace(microsecond=0), usegmt=True)

    def _send(
        self,
        status: int,
        body: bytes,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        if isinstance(payload, dict) and "@sim.xml" in payload:
            self._send(status, payload["@sim.xml"].encode(), headers, "application/xml")
            return
        self._send(status, json.dumps(payload).encode(), headers)

    def _record(self, path: str, params: dict[str, str], status: int) -> None:
        sim = self.simulator
        entry = RequestLog(self.command, path, params, status, sim.now.isoformat())
        sim.log.append(entry)
        hook = sim.after_request
        if hook is not None:
            hook(entry)

    def do_POST(self) -> None:
        sim = self.simulator
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if path == "/_sim/listings":
            self._script(raw)
            return
        form = {k: v[0] for k, v in parse_qs(raw).items()}
        if path != "/token":
            self._json(404, {"error": "not found"})
            return
        with sim._lock:
            status, body = sim._issue_token(form, self.headers.get("Authorization"))
        headers = {"WWW-Authenticate": 'Basic realm="token"'} if status == 401 else None
        self._json(status, body, headers)

    def _script(self, raw: str) -> None:
        """Control API for a simulator in another process (``mls-sync sim mls``):
        ``POST /_sim/listings`` with ``{"ListingKey", "StandardStatus"}`` changes a listing's
        status now (adding it when new); ``"hidden": true`` takes it out of the feed."""
        try:
            body = json.loads(raw or "{}")
            key = str(body["ListingKey"])
        except (ValueError, KeyError, TypeError):
            self._json(400, {"error": "expected JSON with ListingKey (and StandardStatus)"})
            return
        sim = self.simulator
        known = set(sim.keys())
        if body.get("hidden"):
            if key not in known:
                self._json(404, {"error": f"no listing {key}"})
                return
            sim.hide(key)
        elif key in known:
            sim.set_status(key, str(body.get("StandardStatus", "Active")))
        else:
            sim.add_listing(key, str(body.get("StandardStatus", "Active")))
        self._json(200, {"ListingKey": key, "ok": True})

    def do_GET(self) -> None:
        sim = self.simulator
        parts = urlsplit(self.path)
        if sim.query_decoding == "strict":
            params = _strict_params(parts.query)
        else:
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if sim.latency:
            time.sleep(sim.latency)
        hold: float | None = None
        drop = False
        headers: dict[str, str]
        body: dict[str, Any]
        with sim._lock:
            route = sim.route(parts.path)
            if route is None:
                status, body, headers = 404, {"error": "not found"}, {}
            elif not sim._authorised(self.headers.get("Authorization")):
                sim.requests += 1
                status, body, headers = (
                    401,
                    {"error": {"code": "invalid_token", "message": "token missing or expired"}},
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
            else:
                sim.requests += 1
                status, body, headers = self._faulted_or_answer(params, route)
                if status == -1:
                    faults = sim._faults
                    if faults.timeout_next:
                        hold = faults.timeout_next.pop(0)
                    else:
                        faults.drop_next -= 1
                        drop = True
        if hold is not None or drop:
            if hold:
                time.sleep(hold)
            self._record(parts.path, params, 0)
            self.close_connection = True
            return
        if status == -2:
            # A page cut off mid-JSON.
            self._record(parts.path, params, 200)
            self._send(200, json.dumps(body).encode()[:-17])
            return
        if status in (-3, -4):
            # A slow-drip page, or one padded past any sane size.
            self._record(parts.path, params, 200)
            self._drip_or_huge(status == -3, json.dumps(body).encode(), headers)
            return
        # Logged before the answer goes out, so a client that has its answer can read the log
        # entry for it (logging after the write raced with tests reading ``sim.log[-1]``).
        self._record(parts.path, params, status)
        self._json(status, body, headers)

    def _faulted_or_answer(
        self, params: dict[str, str], route: str = "Property"
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        sim = self.simulator
        faults = sim._faults
        suspended = sim._over_token_limits(self.headers.get("Authorization"))
        if suspended is not None:
            return (
                429,
                {"error": "token suspended: request quota exceeded"},
                {"Retry-After": suspended},
            )
        if faults.throttle_next:
            retry_after = faults.throttle_next.pop(0)
            return (
                429,
                {"error": "throttled"},
                ({"Retry-After": retry_after} if retry_after else {}),
            )
        limited = sim._rate_limited()
        if limited is not None:
            return 429, {"error": "rate limit"}, {"Retry-After": limited}
        if faults.fail_next:
            status, retry_after = faults.fail_next.pop(0)
            return (
                status,
                {"error": "injected"},
                ({"Retry-After": retry_after} if retry_after else {}),
            )
        if faults.fail_rate and sim.rng.random() < faults.fail_rate:
            return faults.fail_status, {"error": "injected"}, {}
        if faults.timeout_next or faults.drop_next > 0:
            return -1, {}, {}
        wanted = _max_page_size(self.headers.get("Prefer"))
        status, body = sim.answer(route, params, max_page_size=wanted)
        if status == 200 and faults.malformed_next > 0:
            faults.malformed_next -= 1
            return -2, body, {}
        headers = sim._quota_headers()
        if wanted is not None and status == 200:
            headers["Preference-Applied"] = f"odata.maxpagesize={wanted}"
        if status == 200 and faults.drip_next:
            self._fault_args = faults.drip_next.pop(0)
            return -3, body, headers
        if status == 200 and faults.huge_next:
            self._fault_args = (faults.huge_next.pop(0), 0.0)
            return -4, body, headers
        return status, body, headers

    _fault_args: tuple[int, float] = (0, 0.0)

    def _drip_or_huge(self, drip: bool, data: bytes, headers: Mapping[str, str]) -> None:
        """Writes a page in ``chunk``-byte pieces ``delay`` seconds apart (drip), or padded
        with whitespace to ``size`` bytes and chunked (huge), until the client hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if drip:
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        try:
            if drip:
                chunk, delay = self._fault_args
                for at in range(0, len(data), chunk):
                    self.wfile.write(data[at : at + chunk])
                    time.sleep(delay)
                return
            size = self._fault_args[0]
            pad = max(0, size - len(data))
            pieces = [data[:-1], *([b" " * 65_536] * (pad // 65_536)), b" " * (pad % 65_536)]
            for piece in [*pieces, data[-1:]]:
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            return  # the client hung up: what the fault is for


def serve_forever(
    host: str = "127.0.0.1", port: int = 0, *, listings: int = 20, entity_events: bool = False
) -> None:
    """Runs a simulator in the foreground (``mls-sync sim mls``): prints its URL and
    credentials, serves until interrupted. The clock follows real time."""
    sim = MlsSimulator(host=host, port=port, start=datetime.now(UTC), entity_events=entity_events)
    sim.add_many(listings)
    sim.start()
    print(f"MLS simulator at {sim.url}{sim.resource_path}", flush=True)
    print(
        f"  bearer token: {next(iter(sim.static_tokens))}  token URL: {sim.token_url} "
        f"(client_id={sim.client_id})",
        flush=True,
    )
    print(
        f'  change a listing: curl -d \'{{"ListingKey": "L000000", '
        f'"StandardStatus": "Closed"}}\' {sim.url}/_sim/listings',
        flush=True,
    )
    try:
        while True:
            time.sleep(1)
            sim.set_time(datetime.now(UTC))
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
