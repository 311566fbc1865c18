"""The session event stream: typed chunks (PROTOCOL §2) and the log that orders them."""
