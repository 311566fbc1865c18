"""What every domain shares: settings access, the one application error type and its translation to HTTP, the
API's base classes and parsing of untrusted JSON, and this process's identity.

core imports nothing of the project (no chat, no agents); every other package may import it.
"""
