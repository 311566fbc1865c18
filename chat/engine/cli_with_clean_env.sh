#!/bin/sh
# Runs the Claude Code CLI with only the environment it needs (ClaudeAgentOptions.cli_path points here).
#
# The SDK starts its CLI with the server's whole environment (DATABASE_URL, DJANGO_SECRET_KEY, REDIS_URL, ...)
# under ClaudeAgentOptions.env, and nothing there can remove a variable. So this starts from an empty
# environment and keeps only the variables named in COPILOT_CLI_KEEP_ENV (chat/engine/options.py) and the
# ones the SDK sets for its CLI (CLAUDE_CODE_*, CLAUDE_AGENT_SDK_*); then it becomes the CLI named by
# COPILOT_CLI (exec: same process id, so the runner's `cli_pid` is the CLI's).
set -euf  # -f: the names below are split on spaces, never globbed
cli=${COPILOT_CLI:?COPILOT_CLI must name the Claude Code CLI}
keep="${COPILOT_CLI_KEEP_ENV:-} $(env | sed -n 's/^\(CLAUDE_CODE_[A-Za-z0-9_]*\)=.*/\1/p; s/^\(CLAUDE_AGENT_SDK_[A-Za-z0-9_]*\)=.*/\1/p')"
set -- "$cli" "$@"
for name in $keep; do
  case $name in
    *[!A-Za-z0-9_]* | [0-9]*) continue ;;  # not a variable name: never evaluated
  esac
  eval "is_set=\${$name+yes}"
  if [ -n "$is_set" ]; then
    eval "set -- \"\$name=\${$name}\" \"\$@\""
  fi
done
exec /usr/bin/env -i "$@"
