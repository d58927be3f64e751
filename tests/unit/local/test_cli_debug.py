"""`--debug` works wherever it stands on the command line, and only it shows tracebacks."""

from __future__ import annotations

import pytest

from mls_sync_local.cli import main


@pytest.mark.parametrize(
    ("argv", "traceback"),
    [
        (["dump"], False),
        (["--debug", "dump"], True),
        (["dump", "--debug"], True),
    ],
)
def test_debug_anywhere_shows_the_traceback(
    argv: list[str],
    traceback: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given no local endpoint (dump refuses to reach real AWS)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # When the command runs
    code = main(argv)
    # Then it is a usage error, one readable line, and a traceback only with --debug
    err = capsys.readouterr().err
    assert code == 2
    assert "mls-sync: error: AWS_ENDPOINT_URL is not set" in err
    assert ("Traceback" in err) is traceback
