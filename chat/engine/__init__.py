"""The turn engine: drives the Claude Agent SDK for one turn and emits its events. It never touches a socket."""
