"""The turn engine: drives the Claude Agent SDK for a turn and records what it does as events. It never touches a
socket (no consumers, views, API or server: .importlinter).

Rooms: options (the SDK's options), adapter (SDK messages to chunks, pure), recording (the durable write each
chunk implies), runner (drives the SDK), registry (the turns this process runs), policy (what a tool call may
do), tools (the copilot's own tools, registered by apps), observers (who watches turns), reaper, session_store.
May import chat.models, chat.actions, chat.events, chat.selectors (and the reads beside it: chat.branches,
chat.usage), chat.workspaces and core.
"""
