"""Simulators for local runs and tests (never shipped)."""

from __future__ import annotations

from mls_sync_local.sim.mls import MlsSimulator, serve_forever

__all__ = ["MlsSimulator", "serve_forever"]
