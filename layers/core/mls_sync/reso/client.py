"""The replication client: what changed since a cursor, and listings by key.

See docs/replication.md for the design. In one breath: changes are read in
(change timestamp, ListingKey) order from a durable keyset cursor minus an overlap window;
every yielded page carries a cursor that is safe to persist once that page is applied; a page
that was not fully read never yields, so the cursor never passes it. Deletions come from the
vendor's visibility flag or from reconciliation by key (``fetch_by_keys``). The client is
assembled from parts by job: queries and pages (``pages``), changes (``change_reads``), reads
by key (``key_lookup``), the EntityEvent log (``entity_events``); its inputs and outputs are
in ``replication_models``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

import httpx

from mls_sync.netpolicy import loopback_allowed_from_env
from mls_sync.reso.auth import (
    DEFAULT_TOKEN_CACHE,
    Credentials,
    TokenCache,
    TokenState,
    credentials_key,
)
from mls_sync.reso.change_reads import ChangeReads
from mls_sync.reso.cursor import initial_cursor
from mls_sync.reso.key_lookup import KeyLookups
from mls_sync.reso.limits import (
    CircuitBreaker,
    Limiter,
    Monotonic,
    credential_fingerprint,
    shared_breaker,
    shared_limiter,
)
from mls_sync.reso.pages import MAX_EMPTY_PAGES
from mls_sync.reso.profiles import VendorProfile, profile_for
from mls_sync.reso.replication_models import ChangePage, KeyLookup, ReplicationTarget
from mls_sync.reso.transport import Transport, check_url
from mls_sync.timeutil import Clock, utc_now

if TYPE_CHECKING:
    from mls_sync.reso.entity_events import EventAnchor, EventPage, EventReader

__all__ = [
    "MAX_EMPTY_PAGES",
    "ChangePage",
    "KeyLookup",
    "ReplicationClient",
    "ReplicationTarget",
    "initial_cursor",
]


class ReplicationClient(ChangeReads, KeyLookups):
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
        if http is None:
            # Here, not at the top: the guarded transport brings httpcore (~0.1 s of a cold
            # start), which a handler's import and init do not need (clients are per job).
            from mls_sync.nettransport import guarded_client  # noqa: PLC0415

            # Connections only where the outbound policy allows, checked on the address.
            http = guarded_client(allow_loopback=loopback)
        self._transport = Transport(
            http=http,
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
        self._base = base
        self._event_reader: EventReader | None = None

    @property
    def _events(self) -> EventReader:
        # Made on first use: a connection whose detection mode is known to be replication
        # never reads the EntityEvent log, and its module is not part of a cold start.
        if self._event_reader is None:
            from mls_sync.reso.entity_events import EventReader  # noqa: PLC0415

            base, dataset = self._base, self.target.dataset
            self._event_reader = EventReader(
                get_json=self._get,
                get_text=lambda url, deadline: self._transport.get_text(url, deadline=deadline),
                events_url=f"{base}/{self.profile.resource_path('EntityEvent', dataset)}",
                metadata_url=f"{base}/{self.profile.resource_path('$metadata', dataset)}",
                page_size=self.profile.event_page,
                host=self._transport.host,
                requests_made=lambda: self._transport.requests_made,
            )
        return self._event_reader

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
        return 0 if self._event_reader is None else self._event_reader.requests

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
        return self._feed(self._events.after(anchor, deadline))
