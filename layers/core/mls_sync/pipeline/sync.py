"""The worker's domain: sync one connection for one SyncJob.

In one breath (docs/pipeline.md has the why):
- a run is started (or resumed after a crash) under a key derived from the job, so a
  duplicate delivery of a finished job is a no-op;
- a new connection (no cursor) reads its tracked listings by key and then starts from
  ``initial_cursor(now)``: never a full download of the feed;
- every ``RECONCILE_EVERY_HOURS`` (and on ``reason=reconcile``) tracked listings are read by
  key; a key the MLS no longer returns becomes ``deleted``. MLS Grid is asked by ListingId
  (``mlsListingId``, stored from applied records); listings without one are never asked by
  the wrong field (that would "delete" them) and are counted ``notReconcilable``;
- otherwise, listings never synced (added after the cursor passed them) are read by key
  first, at most ``NEWLY_TRACKED_LIMIT`` per run;
- then incremental changes from the cursor; records of listings we do not track cost nothing
  but the read; the cursor is persisted after each page whose records were all applied;
- a status change is written with its history entry in one transaction, the entry carrying
  the effects still to deliver (outbox); effects are delivered and then ticked off, and a
  redelivery that finds the change already applied finishes whatever is still pending;
- when the invocation's time runs short, the cursor stands and a ``continuation`` job takes
  the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress

from aws_lambda_powertools import Logger

from mls_sync.models import (
    SyncJob,
)
from mls_sync.pipeline.decisions import (
    EFFECT_EVENT,
    EFFECT_UNPUBLISH,
    LOOKUP_BY_ID,
    LOOKUP_BY_KEY,
    Tracked,
    chunks,
    deletion_update,
    describe_error,
    effects_for,
    event_for,
    is_permanent,
    mls_update,
    newly_tracked_batch,
    reconcile_due,
    restoration_key,
    status_change,
)
from mls_sync.pipeline.detection import Detector
from mls_sync.pipeline.keys import run_key
from mls_sync.pipeline.ledger import Ledger
from mls_sync.pipeline.mls_client import (
    ClientFactory,
    CredentialsError,
    MlsClient,
    credentials_from_secret,
    replication_client_factory,
    target_of,
)
from mls_sync.pipeline.run_state import (
    BY_KEY_CHUNK,
    ChunkFailed,
    EffectsPendingError,
    ImplausibleAnswerError,
    Outcome,
    OutOfTime,
    SyncDeps,
    SyncResult,
    progress,
)
from mls_sync.reso.errors import DeadlineReached

logger = Logger(child=True)


class _Sync(Detector, Ledger):
    def run(self) -> SyncResult:
        deps, job = self.deps, self.job
        started = deps.monotonic()
        connection = deps.connections.get(job.connection_id)
        if connection is None or not connection.enabled:
            state = "missing" if connection is None else "disabled"
            logger.info(
                "connection not synced", extra={"connectionId": job.connection_id, "state": state}
            )
            return SyncResult(job.connection_id, "", "skipped")  # the log names why
        key = run_key(job, connection.cursor, progress(connection))
        self.run_key = key
        if not self._claim(key):
            logger.info(
                "duplicate sync job", extra={"connectionId": job.connection_id, "runKey": key}
            )
            return SyncResult(job.connection_id, key, "duplicate")
        client: MlsClient | None = None
        outcome: Outcome
        continued = False
        try:
            client = deps.client_factory(connection)
            self._work(connection, client)
            outcome = "partial" if self.counts.failed else "succeeded"
        except (OutOfTime, DeadlineReached):
            continued = True
            outcome = "continued"
        except ChunkFailed:
            outcome = "partial"
        except Exception as exc:  # recorded on the run and retried
            logger.exception("sync failed", extra={"connectionId": job.connection_id})
            self.errors.insert(0, describe_error(exc))
            outcome = "failed"
        finally:
            requests = client.requests_made if client is not None else 0
            if client is not None:
                with suppress(Exception):
                    client.close()
        # Whatever happened to the reads, the takedowns of the changes written are settled
        # now (sent, or held by the brake): they never wait for the rest of the run.
        if not self._settle(connection) and outcome == "succeeded":
            outcome = "partial"
        if continued and job.reason != "push":
            # A push job's rest waits in its inbox, under a push job of its own.
            self._continue(connection.connection_id)
        result = SyncResult(
            connection_id=job.connection_id,
            run_key=key,
            outcome=outcome,
            counts=self.counts,
            errors=self.errors[:10],
            mls_requests=requests,
            duration_ms=int((deps.monotonic() - started) * 1000),
        )
        self._finish(result)
        return result


def sync_connection(job: SyncJob, deps: SyncDeps, remaining_ms: Callable[[], int]) -> SyncResult:
    """Runs one SyncJob to its end (or to a continuation) and records it as a SyncRun.

    Never raises for a failure it can record: the result's ``retry`` says whether the
    message must be delivered again."""
    return _Sync(deps, job, remaining_ms).run()


__all__ = [
    "BY_KEY_CHUNK",
    "EFFECT_EVENT",
    "EFFECT_UNPUBLISH",
    "LOOKUP_BY_ID",
    "LOOKUP_BY_KEY",
    "ClientFactory",
    "CredentialsError",
    "EffectsPendingError",
    "ImplausibleAnswerError",
    "MlsClient",
    "Outcome",
    "SyncDeps",
    "SyncResult",
    "Tracked",
    "chunks",
    "credentials_from_secret",
    "deletion_update",
    "describe_error",
    "effects_for",
    "event_for",
    "is_permanent",
    "mls_update",
    "newly_tracked_batch",
    "reconcile_due",
    "replication_client_factory",
    "restoration_key",
    "status_change",
    "sync_connection",
    "target_of",
]
