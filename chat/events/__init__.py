"""The session event stream: typed chunks (PROTOCOL §2), the log that assigns every `seq` (in memory or on Redis
Streams), the cursor that orders replay and live events, and the notices sessions hear outside their turns.

May import chat.models and core; never the engine, the actions or a transport (.importlinter).
"""
