"""mls_sync: the shared package shipped in the CoreLayer."""
