"""The human inbox: queues, the conversation with the 360° profile beside it, canned responses, metrics."""
