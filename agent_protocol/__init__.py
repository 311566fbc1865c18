"""The Agent Protocol (agentprotocol.ai, v1) under /ap/v1/agent/: a task is a chat session, a step is a turn, and
artifacts are the session's workspace files. It sits on chat's interfaces and adds no behaviour of its own."""
