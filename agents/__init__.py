"""Agents: the blocks they are made of, the agents the copilot builds, and their background runs."""
