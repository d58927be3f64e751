"""RESO Web API replication client: incremental changes on a keyset cursor, lookups by key,
vendor profiles as data, and the limits (retries, rate limiter, breaker, deadline) around it."""
