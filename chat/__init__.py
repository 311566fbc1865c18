"""Conversations with the copilot: sessions, their turns and events, and every way in (pages, websocket, API, admin).

Rooms: models (the rows), actions (every write, `do_*`), selectors (reads), engine (runs turns on the Claude
Agent SDK; no sockets), events (the session event log; no engine), and the transports around them (consumers,
api, views, admin). chat may import core; it never imports agents, which reaches it only through the
interfaces named in .importlinter.
"""
