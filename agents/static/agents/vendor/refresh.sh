#!/bin/sh
# Refresh the builder's vendored graph editor, Drawflow, from npm at the pinned version: `npm pack` it into a
# temporary folder and copy its built files and licence here. The builder loads them as they are (no build step).
# Change the version, run this script, run tests/web/test_agent_builder.py, commit the result.
set -eu

DRAWFLOW=0.0.60

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "drawflow@$DRAWFLOW" >/dev/null && tar xzf ./*.tgz)
rm -rf "$here/drawflow"
mkdir -p "$here/drawflow"
cp "$work/package/dist/drawflow.min.js" "$work/package/dist/drawflow.min.css" "$work/package/LICENSE" "$here/drawflow/"
echo "$DRAWFLOW" > "$here/drawflow/VERSION"
echo "agents/static/agents/vendor: drawflow $DRAWFLOW"
