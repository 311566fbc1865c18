"""Writes: every change to conversations goes through a `do_*` function here."""
