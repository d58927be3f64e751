"""Reading what changed since a cursor: keyset, anchored and full-traversal paging.

Which way depends on what the vendor's server can do (its profile's ``paging``): a keyset on
(change timestamp, key) where both can be filtered; re-anchoring each page at the last
timestamp seen where only the timestamp can; else a full traversal whose cursor moves only
once everything was read. A server found serving pages out of the order asked for degrades
the client to the traversal for its life. Every yielded page carries a cursor safe to persist
once that page is applied.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

from mls_sync.models import Cursor
from mls_sync.reso.cursor import after_filter, position, quote, shift_literal
from mls_sync.reso.errors import MlsProtocolError
from mls_sync.reso.odata import timestamp_literal
from mls_sync.reso.pages import PageReading
from mls_sync.reso.replication_models import ChangePage
from mls_sync.timeutil import Instant

logger = logging.getLogger("mls_sync.reso.client")  # the client's, as before the split


class ChangeReads(PageReading):
    """``changes()`` and its three ways of paging (a part of ``ReplicationClient``)."""

    _degraded: str | None

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
            pages = self._keyset(cursor, start, deadline)
        elif self.profile.paging == "anchor" and self._degraded is None:
            pages = self._anchor(cursor, start, deadline)
        else:
            pages = self._traverse(cursor, start, deadline)
        return self._feed(pages)

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
