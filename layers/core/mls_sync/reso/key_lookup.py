"""Reading listings by key: batches of ``in`` (or ``or`` chains), asked twice before missing.

A first sync and a reconciliation read every tracked listing by key rather than downloading
the feed. Keys go in batches the vendor's server accepts (``in`` is OData 4.01; a 4.0 server
that refuses it gets ``or`` chains for the client's life). A key not returned is asked once
more before it is reported missing, so one inconsistent page cannot delete a listing, and a
record returned but unreadable proves the listing exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mls_sync.reso.cursor import quote
from mls_sync.reso.errors import MlsQueryRefused
from mls_sync.reso.pages import PageReading
from mls_sync.reso.records import MlsRecord, SkippedRecord, parse_record
from mls_sync.reso.replication_models import KeyLookup


@dataclass
class _Lookups:
    """What the passes of one ``fetch_by_keys`` have read so far."""

    found: dict[str, MlsRecord] = field(default_factory=dict)
    present_but_bad: set[str] = field(default_factory=set)
    """Returned but unreadable: it exists, so it is never called a deletion."""
    skipped: list[SkippedRecord] = field(default_factory=list)

    def unanswered(self, keys: Sequence[str]) -> list[str]:
        return [k for k in keys if k not in self.found and k not in self.present_but_bad]


class KeyLookups(PageReading):
    """``fetch_by_keys()`` and its passes (a part of ``ReplicationClient``)."""

    _use_in: bool

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
