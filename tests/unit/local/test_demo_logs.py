"""The demo's handler log folder: gone from the temporary directory when the demo ends
(success, failure, Ctrl-C), kept only with --keep-logs, which prints where."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import pytest

from mls_sync_local.demo import LOG_PREFIX, log_folder


@pytest.fixture
def temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile.gettempdir() answers a fresh, empty folder."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _left(temp: Path) -> list[str]:
    return sorted(
        p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith(LOG_PREFIX)
    )


def test_the_folder_is_removed_when_the_demo_ends(temp: Path) -> None:
    out = io.StringIO()
    with log_folder(keep=False, out=out) as folder:
        (folder / "handlers.log").write_text("a log line\n", encoding="utf-8")
        assert folder.parent == temp
        assert _left(temp) == [folder.name]
    assert _left(temp) == []
    assert out.getvalue() == ""


def _demo_that_ends_with(interruption: BaseException, *, keep: bool, out: io.StringIO) -> None:
    with log_folder(keep=keep, out=out) as folder:
        (folder / "handlers.log").write_text("a log line\n", encoding="utf-8")
        raise interruption


@pytest.mark.parametrize("interruption", [RuntimeError("the demo failed"), KeyboardInterrupt()])
def test_the_folder_is_removed_on_failure_and_on_ctrl_c(
    temp: Path, interruption: BaseException
) -> None:
    with pytest.raises(type(interruption)):
        _demo_that_ends_with(interruption, keep=False, out=io.StringIO())
    assert _left(temp) == []


def test_keep_logs_keeps_the_folder_and_says_where(temp: Path) -> None:
    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        _demo_that_ends_with(KeyboardInterrupt(), keep=True, out=out)
    [name] = _left(temp)
    folder = temp / name
    assert (folder / "handlers.log").read_text(encoding="utf-8") == "a log line\n"
    assert out.getvalue() == f"handler logs kept in {folder}\n"
