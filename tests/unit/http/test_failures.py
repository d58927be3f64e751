"""A failure to connect is classified by the exceptions behind it, never by their words."""

from __future__ import annotations

import socket
import ssl

import httpcore
import httpx
import pytest
from mls_sync.http.failures import FailureKind, connect_kind, connect_problem
from mls_sync.nettransport import OutboundConnectRefused


def _chained(outer: Exception, *causes: BaseException) -> Exception:
    """``outer`` raised ``from`` each cause in turn, as httpx and httpcore chain them."""
    link: BaseException = outer
    for cause in causes:
        link.__cause__ = cause
        link = cause
    return outer


def _as_httpx(cause: BaseException, words: str = "misleading words: connection reset") -> Exception:
    """What httpx raises: its ConnectError from httpcore's, from the OS's."""
    return _chained(httpx.ConnectError(words), httpcore.ConnectError(words), cause)


@pytest.mark.parametrize(
    ("cause", "kind"),
    [
        (ConnectionRefusedError(111, "Connection refused"), FailureKind.REFUSED),
        (socket.gaierror(-2, "Name or service not known"), FailureKind.HOST_NOT_FOUND),
        (ConnectionResetError(104, "Connection reset by peer"), FailureKind.RESET),
        (ssl.SSLCertVerificationError("certificate verify failed"), FailureKind.TLS),
        (OSError(113, "No route to host"), FailureKind.CONNECT),
    ],
)
def test_the_os_error_behind_the_library_error_decides(
    cause: BaseException, kind: FailureKind
) -> None:
    # The words say "reset" every time: only the chained type may decide
    assert connect_kind(_as_httpx(cause)) is kind


def test_an_error_class_may_declare_its_kind() -> None:
    refused = OutboundConnectRefused("outbound policy: mls.example.com resolves to 10.0.0.1")
    exc = _chained(httpx.ConnectError(str(refused)), refused)
    assert connect_kind(exc) is FailureKind.BLOCKED
    problem = connect_problem(exc)
    assert problem.kind is FailureKind.BLOCKED
    assert problem.kind.blocked
    assert problem.error == "ConnectError"
    assert problem.text == f"connection failed (ConnectError: {refused})"


def test_a_cycle_in_the_chain_ends() -> None:
    first, second = RuntimeError("a"), RuntimeError("b")
    first.__cause__, second.__cause__ = second, first
    assert connect_kind(first) is FailureKind.CONNECT
