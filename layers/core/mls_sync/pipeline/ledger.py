"""The run ledger: a run claimed under its key (a duplicate delivery is a no-op),
recorded when it ends, handed to a continuation when time runs short."""

from __future__ import annotations

from aws_lambda_powertools import Logger

from mls_sync.dal.base import ConditionFailed
from mls_sync.models import SyncJob, SyncRun
from mls_sync.pipeline.keys import dedup_id, group_id
from mls_sync.pipeline.run_state import Outcome, RunState, SyncResult, progress
from mls_sync.queues import OutgoingMessage
from mls_sync.timeutil import format_utc

logger = Logger(child=True)


class Ledger(RunState):
    def _claim(self, key: str) -> bool:
        """Starts the run, or takes over one a crashed or failed delivery left behind. A run
        that succeeded or handed over to a continuation is done: the job is a duplicate."""
        run = SyncRun(
            connection_id=self.job.connection_id,
            run_key=key,
            reason=self.job.reason,
            started_at=self.now_text,
            correlation_id=self.job.correlation_id,
            ttl=int(self.now.timestamp()) + self.deps.sync_run_ttl_days * 86_400,
        )
        if self.deps.runs.start(run) is not None:
            return True
        existing = self.deps.runs.get(self.job.connection_id, key)
        if existing is None or existing.outcome in ("succeeded", "continued"):
            return False
        # FIFO groups mean no other delivery of this connection is in flight: a "running"
        # run is one whose invocation died. Conditional on the outcome we read, so of two
        # takers only one proceeds.
        return self.deps.runs.restart(run, previous_outcome=existing.outcome)

    def _finish(self, result: SyncResult) -> None:
        run = SyncRun(
            connection_id=result.connection_id,
            run_key=result.run_key,
            reason=self.job.reason,
            started_at=self.now_text,
            finished_at=format_utc(self.deps.clock()),
            outcome=result.outcome,
            counts=result.counts,
            errors=result.errors,
            mls_requests=result.mls_requests,
            duration_ms=result.duration_ms,
            correlation_id=self.job.correlation_id,
            ttl=int(self.now.timestamp()) + self.deps.sync_run_ttl_days * 86_400,
        )
        try:
            self.deps.runs.finish(run)
        except ConditionFailed:
            logger.warning("sync run was taken over", extra={"runKey": result.run_key})
        logger.info(
            "sync finished",
            extra={
                "connectionId": result.connection_id,
                "runKey": result.run_key,
                "outcome": result.outcome,
                "counts": result.counts.to_stored(),
                "mlsRequests": result.mls_requests,
                "durationMs": result.duration_ms,
                "correlationId": self.job.correlation_id,
            },
        )

    def _continue(self, connection_id: str) -> Outcome:
        """Hands the rest of the connection's work to a continuation job. The cursor stored
        is the last one durably applied, so the continuation starts exactly there."""
        connection = self.deps.connections.get(connection_id)
        cursor = connection.cursor if connection else None
        phase_progress = progress(connection) if connection else ""
        job = SyncJob(
            connection_id=connection_id,
            reason="continuation",
            slot=self.job.slot,
            correlation_id=self.job.correlation_id,
        )
        self.deps.sync_queue.send(
            [
                OutgoingMessage(
                    job,
                    group_id=group_id(connection_id),
                    dedup_id=dedup_id(job, cursor, phase_progress),
                )
            ]
        )
        self.counts.continuations += 1
        logger.info("continuation enqueued", extra={"connectionId": connection_id})
        return "continued"
