"""mls_sync_local: the mls-sync command, local runtime and simulators (never shipped)."""
