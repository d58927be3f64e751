"""What every outbound call of the service shares, whoever it talks to (the MLS, the social
platforms, SQS and EventBridge): capped full-jitter backoff and deadlines (``retry``), the
wait a server asks for (``retry_after``), keeping secrets out of text (``redact``) and the
typed reasons an attempt fails (``failures``). The outbound URL policy and its loopback
rule stay in ``mls_sync.netpolicy`` (one parser for both modes).

Written here rather than taken from tenacity or stamina: the loops that use it carry state
between attempts (a refreshed token, the entries SQS still refused, a shared rate limiter
that honours ``Retry-After`` for every worker on a credential) and must never sleep past a
caller's deadline that also reserves a request's whole timeout; a decorator would own the
loop and hide that state, and tenacity alone adds ~20 ms to every handler's import."""
