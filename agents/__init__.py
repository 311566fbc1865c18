"""Agents: the blocks they are made of, the agents people and the copilot build, and their background runs.

Rooms: models, blocks (typed steps), graphs (checking), actions and selectors, executor and worker (background
runs), copilot_tools (registered with chat's engine), api, views, admin. agents may import core, and chat only
through its named interfaces: chat.actions.notices, chat.engine.tools and chat.events.notices (.importlinter).
"""
