"""The local runtime reads the handlers' output as CloudWatch would: EMF lines become metric
datapoints, other JSON lines log events, from any thread, whatever stdout was when the
handler's logger was created."""

from __future__ import annotations

import io
import json
import threading

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mls_sync_local.runtime.telemetry import TAP, Capture, emf_datums, routed_to

EMF = {
    "_aws": {
        "Timestamp": 1_796_000_000_000,
        "CloudWatchMetrics": [
            {
                "Namespace": "MlsSync",
                "Dimensions": [["service"]],
                "Metrics": [{"Name": "Sync_failed", "Unit": "Count"}, {"Name": "MlsRequests"}],
            }
        ],
    },
    "service": "mls-sync",
    "Sync_failed": [1.0, 1.0],
    "MlsRequests": 4,
}


def test_an_emf_record_is_one_datum_per_metric_with_every_value() -> None:
    datums = emf_datums(EMF)
    assert [(d.namespace, d.name, d.dimensions, d.values) for d in datums] == [
        ("MlsSync", "Sync_failed", (("service", "mls-sync"),), (1.0, 1.0)),
        ("MlsSync", "MlsRequests", (("service", "mls-sync"),), (4.0,)),
    ]
    assert datums[0].at_ms == 1_796_000_000_000
    assert emf_datums({"message": "not a metric"}) == []


def test_lines_from_threads_are_assembled_and_sorted_into_metrics_and_logs() -> None:
    # Given a capture and output written in pieces by two threads at once
    capture = Capture({"worker": "WorkerFunction"})
    sink = io.StringIO()

    def write(pieces: list[str]) -> None:
        for piece in pieces:
            TAP.write(piece)

    with routed_to(sink), TAP.capture(capture):
        first = threading.Thread(
            target=write, args=([json.dumps(EMF)[:20], json.dumps(EMF)[20:], "\n"],),
            name="worker_0",
        )  # fmt: skip
        second = threading.Thread(
            target=write, args=(['{"level": "INFO", "mes', 'sage": "sync finished"}\n'],),
            name="worker_1",
        )  # fmt: skip
        first.start()
        second.start()
        first.join()
        second.join()
        print("plain text is passed on, not captured")
    # Then one metric record, one log event attributed to the worker, all passed on
    assert [d.name for d in capture.datums] == ["Sync_failed", "MlsRequests"]
    assert [(e.function, json.loads(e.message)["message"]) for e in capture.logs] == [
        ("WorkerFunction", "sync finished")
    ]
    assert "plain text is passed on" in sink.getvalue()
    assert "sync finished" in sink.getvalue()


def test_powertools_output_is_captured_though_its_logger_was_made_elsewhere() -> None:
    # Given a logger and metrics created before any routing (bound to another stream)
    elsewhere = io.StringIO()
    logger = Logger(service="telemetry-test", stream=elsewhere)
    metrics = Metrics(namespace="MlsSync", service="mls-sync")
    # Powertools' Metrics instances share one metric set: start from an empty one, not from
    # whatever an earlier test in this process added and never flushed
    metrics.clear_metrics()
    capture = Capture()
    sink = io.StringIO()
    # When a handler logs and flushes metrics while the output is routed
    with routed_to(sink), TAP.capture(capture):
        logger.info("connection failing", extra={"connectionId": "c-zoe"})
        metrics.add_metric(name="ConnectionsFailing", unit=MetricUnit.Count, value=1)
        metrics.flush_metrics()
    logger.info("after the block")
    # Then both were captured and went to the routed stream, and the logger's own stream
    # is back afterwards
    assert [json.loads(e.message)["connectionId"] for e in capture.logs] == ["c-zoe"]
    assert [d.name for d in capture.datums] == ["ConnectionsFailing"]
    assert "c-zoe" in sink.getvalue()
    assert "after the block" in elsewhere.getvalue()
    assert "c-zoe" not in elsewhere.getvalue()
