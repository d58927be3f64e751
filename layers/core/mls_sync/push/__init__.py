"""The push receiver (PushFunction, issue 17): RESO push (RCP-028) and vendor webhooks
turned into inbox keys and targeted sync jobs. docs/push.md."""
