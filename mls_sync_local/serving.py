"""A loopback HTTP server served from a daemon thread: the MLS and platform simulators and
the function-URL front each run one, and stop it the same way."""

from __future__ import annotations

import threading
from socketserver import BaseServer


class Serving:
    """``server`` served from a thread named ``name`` once started; ``stop`` shuts it down
    (only if it ran: ``shutdown`` waits for a ``serve_forever`` that never started), joins
    the thread and closes the socket. A short ``poll_interval`` keeps ``stop`` (and so every
    test fixture) fast."""

    def __init__(self, server: BaseServer, *, name: str, poll_interval: float = 0.5) -> None:
        self.server = server
        self._name = name
        self._poll_interval = poll_interval
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.server.serve_forever,
                kwargs={"poll_interval": self._poll_interval},
                name=self._name,
                daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server.server_close()
