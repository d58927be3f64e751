"""The sync pipeline's domain: dispatching sync jobs, syncing one connection, manual syncs.

Pure logic over the data access layer and injected clients; the Lambda handlers in
``functions/`` only parse events, build dependencies and call in here.
"""
