"""The JSON API and the SSE stream (PROTOCOL §4): thin views over actions, selectors and the engine.

May import everything of chat below it, and core.api for its base classes and error handling.
"""
