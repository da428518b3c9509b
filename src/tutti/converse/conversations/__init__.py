"""Conversations: teams, the conversation and its messages, assignment, and the metrics of the inbox."""
