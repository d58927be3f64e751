"""`mls-sync demo` (what `make run` runs) as a new user runs it: a subprocess that starts
every server on free loopback ports, converges, reports, and leaves nothing running and
nothing in the temporary directory."""

from __future__ import annotations

import re
import socket

import pytest

from mls_sync_local.demo import LOG_PREFIX
from tests.integration.demo.conftest import DEMO_TIMEOUT, DemoRun


def _listening(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


@pytest.mark.timeout(2 * DEMO_TIMEOUT)  # the session's demo run may start in this test
def test_demo_converges_and_stops_everything(demo_run: DemoRun) -> None:
    # Given a clean environment and a temporary directory of its own (conftest.demo_run)
    # When the demo runs as a user would run it
    done, report, temp = demo_run.done, demo_run.report, demo_run.temp
    # Then it converged, and says so
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Converged in" in out
    # every kind of change the story tells was detected
    for transition in (
        "active>sold",
        "active>pending",
        "pending>active",
        "sold>active",
        "active>deleted",
    ):
        assert transition in out
    # posts came down on all three platforms, Instagram Login posts wait for the agent
    assert re.search(r"facebook\s+\d+ unpublished", out)
    assert re.search(r"linkedin\s+\d+ unpublished", out)
    assert "manual action required" in out
    # far fewer MLS requests than one per listing per cycle
    figures = re.search(r"MLS requests: (\d+) .* made (\d+)", out)
    assert figures is not None
    requests, baseline = map(int, figures.groups())
    assert requests * 20 < baseline
    # the mass-change brake: most of one connection's listings lost for one cycle are held
    # (no post taken down), then discarded once they are back: nothing released
    held = re.search(
        r"(\d+) deletions recorded, brake tripped \(MassChangeHeld\): "
        r"(\d+) posts held, 0 taken down",
        out,
    )
    assert held is not None, out[-3000:]
    assert int(held.group(1)) > 10
    assert int(held.group(2)) > 0
    assert re.search(r"0 posts released, (\d+) listings re-read by key, \1 restored", out)
    assert re.search(
        r"Mass-change brake: c-dee-reso's MLS lost 12 of its 15 listings for one cycle; "
        r"the reconciliation's 12 deletions tripped the brake: \d+ posts held, 0 taken down\.",
        out,
    )
    assert "the held takedowns were discarded, 0 released; a re-read by key restored 12" in out
    # push: an MLS offering the EntityEvent log pushes a sale and a deletion; both are
    # applied within seconds of the MLS writing them, every push answered 200
    pushed = re.search(
        r"Push: c-eve-reso's MLS .*: (\d+) push\(es\) answered 200; the sold listing's "
        r"(\d+) post\(s\) down and the deletion applied ([\d.]+) s after",
        out,
    )
    assert pushed is not None, out[-3000:]
    assert int(pushed.group(2)) >= 1
    assert float(pushed.group(3)) < 60
    assert report.read_text(encoding="utf-8").startswith("<!doctype html>")
    # And every server it started is gone
    servers = re.search(r"listening on loopback: (.*)", out)
    assert servers is not None
    urls = [u.strip() for u in servers.group(1).split(",")]
    assert len(urls) == 7  # moto, 5 MLS simulators, the platform simulator
    assert not [u for u in urls if _listening(u)]
    # and its handler log folder is gone from the temporary directory (no --keep-logs)
    assert "removed at the end; --keep-logs keeps them" in out
    assert not [p.name for p in temp.iterdir() if p.name.startswith(LOG_PREFIX)]
