"""The AI service agent: the router that decides (answer, tool, hand-off), its tools, the LLM path and
the copilot for people."""
