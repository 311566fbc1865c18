"""Writes: every change to conversations goes through a `do_*` function here, which states what it locks.

May import chat.models, chat.events (to append what a write implies), chat.selectors and core.
"""
