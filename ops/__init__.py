"""Operations: health and readiness, Prometheus metrics, traces, JSON logs and the staff dashboard (PROTOCOL §9).

Rooms: readiness (the checks), middleware (/healthz, /readyz, /metrics), metrics, tracing and logs (observers of
the engine's turns, chat.engine.observers, and of agent runs, agents.observers), selectors (the dashboard's
aggregate queries) and views (the dashboard). ops may import chat, agents and core; nothing imports ops but
copilot_site (.importlinter).
"""
