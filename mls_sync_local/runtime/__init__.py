"""The local runtime: moto server, deploy from template.yaml, SQS pollers, invoke and tick.

Everything here runs on one machine against loopback endpoints; nothing is shipped to Lambda.
"""
