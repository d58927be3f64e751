"""How a run learns what changed, beyond the replication feed (docs/replication.md
"Detection modes"):

- ``entityEvent``: the RESO EntityEvent log (RCP-027). Events after the connection's
  anchor are read a page at a time; the Property keys we track are read by key and applied
  through the same conditional writes and outbox as any record; a key the MLS no longer
  returns is deleted (through the mass-change brake). The anchor moves past a page only
  once all of it was applied. A log that no longer answers the anchor (reset, expired) is
  never trusted to be quiet: the anchor moves to the log's head and every tracked listing
  is read by key (a reconciliation), so nothing changed meanwhile is missed.
- ``auto``: the log when the server's ``$metadata`` has an ``EntityEvent`` set (asked once,
  the answer kept on the connection), else replication.
- ``push`` jobs: the keys pushed to the connection's inbox (PushFunction) are read by key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from aws_lambda_powertools import Logger

from mls_sync.models import Connection, SyncJob
from mls_sync.pipeline.decisions import chunks, reconcile_due
from mls_sync.pipeline.keys import dedup_id, group_id
from mls_sync.pipeline.mls_client import MlsClient
from mls_sync.pipeline.reader import Reader
from mls_sync.pipeline.run_state import OutOfTime
from mls_sync.queues import OutgoingMessage
from mls_sync.reso.budget_work import named_reads
from mls_sync.reso.errors import MlsQueryRefused

if TYPE_CHECKING:
    from mls_sync.reso.entity_events import EventAnchor

logger = Logger(child=True)

Mode = Literal["replication", "entityEvent"]

LOG_GONE = frozenset({404, 410, 501})
"""Answers to an EntityEvent request that say the server no longer serves the log."""


def mode_of(connection: Connection) -> Mode | None:
    """The connection's mode when it is known without asking the MLS (None: ``auto`` and
    never probed)."""
    if connection.detection != "auto":
        return connection.detection
    return connection.detected


def anchor_of(connection: Connection) -> EventAnchor | None:
    # Here, not at the top: only EntityEvent connections read the log (a replication job's
    # cold start does not load it).
    from mls_sync.reso.entity_events import EventAnchor  # noqa: PLC0415

    if connection.event_sequence is None:
        return None
    return EventAnchor(sequence=connection.event_sequence, key=connection.event_key)


class Detector(Reader):
    def _work(self, connection: Connection, client: MlsClient) -> None:
        if self.job.reason == "push":
            self._pushed(connection, client)
            return
        if not self.job.listing_keys and self._mode(connection, client) == "entityEvent":
            try:
                self._by_events(connection, client)
            except MlsQueryRefused as exc:
                if connection.detection != "auto" or exc.status not in LOG_GONE:
                    raise
                # The server no longer offers the log ``auto`` found: forget the finding
                # (the next run asks $metadata again) and replicate this run.
                self.deps.connections.detection.clear_detected(connection.connection_id)
                self.counts.detection_reset += 1
                logger.warning(
                    "EntityEvent log gone: replicating, $metadata asked again next run",
                    extra={"connectionId": connection.connection_id, "status": exc.status},
                )
                super()._work(connection, client)
            return
        super()._work(connection, client)

    # ------------------------------------------------------------------ mode

    def _mode(self, connection: Connection, client: MlsClient) -> Mode:
        known = mode_of(connection)
        if known is not None:
            return known
        offered = client.supports_entity_events(deadline=self.deadline)
        found: Mode = "entityEvent" if offered else "replication"
        self.counts.detection_probed += 1
        self.deps.connections.detection.set_detected(connection.connection_id, found, self.now_text)
        logger.info(
            "detection mode found",
            extra={"connectionId": connection.connection_id, "detected": found},
        )
        return found

    # ------------------------------------------------------------------ EntityEvent

    def _by_events(self, connection: Connection, client: MlsClient) -> None:
        from mls_sync.reso.entity_events import EventLogBroken  # noqa: PLC0415 - as anchor_of

        anchor = anchor_of(connection)
        if anchor is None:
            # Anchor first, then read what we track by key: whatever changes during the
            # reads is in the log after the anchor, so the next run sees it.
            self._reanchor(connection, client, None)
            self._full_pass(connection, client)
            return
        try:
            self._events_from(connection, client, anchor)
        except EventLogBroken as exc:
            self.counts.event_log_broken += 1
            if len(self.errors) < 10:
                self.errors.append(f"event log {exc.reason}: {exc}"[:300])
            logger.warning(
                "EntityEvent log broken: re-anchored, every tracked listing read by key",
                extra={"connectionId": connection.connection_id, "reason": exc.reason},
            )
            current = self.deps.connections.get(connection.connection_id) or connection
            self._reanchor(current, client, current.event_sequence)
            self._full_pass(current, client)
            return
        self._after_events(connection, client)

    def _events_from(self, connection: Connection, client: MlsClient, anchor: EventAnchor) -> None:
        cid = connection.connection_id
        expected = anchor.sequence
        for page in client.events_after(anchor, deadline=self.deadline):
            self.counts.event_pages += 1
            self.counts.events += len(page.keys)
            if page.skipped:
                # Unreadable events (no usable sequence or key): counted and named, never
                # fatal; the daily reconciliation reads whatever they stood for.
                self.counts.events_skipped += page.skipped
                if len(self.errors) < 10:
                    self.errors.append(f"{page.skipped} unreadable EntityEvent record(s) skipped")
            failed_before = self.counts.failed
            self._resolve(page.keys)
            wanted = [k for k in page.keys if k in self.tracked.ids]
            self.counts.events_tracked += len(wanted)
            for chunk in chunks(wanted, self.deps.by_key_chunk):
                if self._short_of_time():
                    raise OutOfTime
                # The log names the records that changed: a burst of them gone is a burst
                # of deletions, not an outage (the brake still holds their takedowns); and
                # reading them is everyday work, not a bulk read of everything tracked.
                with named_reads():
                    self._by_key(client, chunk, self.tracked, expect_missing=True)
            if self.counts.failed > failed_before:
                # Not all applied: the anchor stays before this page; the next delivery
                # reads it again (what was applied is then a no-op).
                return
            if page.anchor.sequence != expected:
                self.deps.connections.detection.advance_anchor(
                    cid,
                    page.anchor.sequence,
                    page.anchor.key,
                    expected=expected,
                    synced_at=self.now_text,
                )
                expected = page.anchor.sequence
            if page.complete:
                return
            if self._short_of_time():
                raise OutOfTime

    def _reanchor(self, connection: Connection, client: MlsClient, expected: int | None) -> None:
        head = client.event_head(deadline=self.deadline)
        self.deps.connections.detection.advance_anchor(
            connection.connection_id,
            head.sequence,
            head.key,
            expected=expected,
            synced_at=self.now_text,
        )
        self.counts.anchored += 1

    def _full_pass(self, connection: Connection, client: MlsClient) -> None:
        """Every tracked listing read by key (durably, in chunks): a first sync for a
        connection that never had one, else a reconciliation. A phase under way restarts:
        what it read before the anchor was set, the log cannot vouch for."""
        phase = connection.by_key_phase
        if phase is not None:
            self.deps.connections.detection.drop_phase(connection.connection_id, phase)
        kind: Literal["first", "reconcile"] = "first" if connection.cursor is None else "reconcile"
        self._phase(connection, client, self.tracked, kind, None)

    def _after_events(self, connection: Connection, client: MlsClient) -> None:
        """What a replication run does after its changes: a by-key phase under way goes on,
        a due reconciliation runs (the safety net for a producer that breaks RCP-027 in a
        way the anchor cannot see), else new listings are read by key."""
        phase = connection.by_key_phase
        if phase is not None:
            self._phase(connection, client, self.tracked, phase.kind, phase)
        elif self.job.reason == "reconcile" or reconcile_due(
            connection, self.now, self.deps.reconcile_every_hours
        ):
            self._phase(connection, client, self.tracked, "reconcile", None)
        else:
            self._newly_tracked(client, self.tracked)

    # ------------------------------------------------------------------ push

    def _pushed(self, connection: Connection, client: MlsClient) -> None:
        """The keys pushed since the inbox was last opened, read by key. Keys are taken
        out of the inbox only once applied; one pushed after the opening sends a job of
        its own. Out of time, the rest stays in the inbox and a new push job takes it."""
        inbox = self.deps.push_inbox
        if inbox is None:
            raise RuntimeError("push job but no push inbox configured (PUSH_INBOX_TABLE)")
        cid = connection.connection_id
        batch = inbox.open(cid)
        keys = sorted(set(batch.keys))
        self.counts.pushed_keys += len(keys)
        if not keys:
            return
        self._resolve(keys)
        untracked = [k for k in keys if k not in self.tracked.ids]
        self.counts.not_tracked += len(untracked)
        if untracked:
            inbox.done(cid, untracked, opened=batch)
        wanted = [k for k in keys if k in self.tracked.ids]
        try:
            for chunk in chunks(wanted, self.deps.by_key_chunk):
                self._check_time()
                failed_before = self.counts.failed
                self._by_key(client, chunk, self.tracked, expect_missing=True)
                if self.counts.failed > failed_before:
                    return  # kept in the inbox; the redelivered job opens it again
                inbox.done(cid, chunk, opened=batch)
        except OutOfTime:
            self._push_again(connection)
            raise

    def _check_time(self) -> None:
        if self._short_of_time():
            raise OutOfTime

    def _push_again(self, connection: Connection) -> None:
        inbox = self.deps.push_inbox
        if inbox is None:
            return
        ticket = inbox.requeue(connection.connection_id, now=self.now_text)
        if ticket is None:
            return  # a push since the opening has queued a job already (or none is left)
        job = SyncJob(
            connection_id=connection.connection_id,
            reason="push",
            slot=self.now_text,
            correlation_id=f"{self.job.correlation_id.split('+')[0]}+{ticket.number}",
        )
        self.deps.sync_queue.send(
            [
                OutgoingMessage(
                    job,
                    group_id=group_id(connection.connection_id),
                    dedup_id=dedup_id(job, progress=str(ticket.number)),
                )
            ]
        )
        inbox.job_sent(connection.connection_id, self.now_text)  # not owed any more
        self.counts.push_requeued += 1
