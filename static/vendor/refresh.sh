#!/bin/sh
# Refresh the vendored front-end libraries from npm at the pinned versions below: `npm pack` each package into a
# temporary folder and copy its built files and licence here. The pages import these files as they are (no build
# step). Change a version, run this script, run tests/web, commit the result.
set -eu

MARKDOWN_IT=15.0.3
DOMPURIFY=3.4.18
HIGHLIGHT_JS=11.12.0  # the pre-built @highlightjs/cdn-assets of highlight.js
CHART_JS=4.6.1

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# unpack NAME@VERSION: the package's files in $work/<folder>/package
unpack() {
  folder="$work/$(echo "$1" | tr '@/' '__')"
  mkdir -p "$folder"
  (cd "$folder" && npm pack --silent "$1" >/dev/null && tar xzf ./*.tgz)
  echo "$folder/package"
}

# put PACKAGE_DIR TARGET FILE...: copy FILEs (paths inside the package) into static/vendor/TARGET, flat
put() {
  package=$1 target="$here/$2"
  shift 2
  rm -rf "$target"
  mkdir -p "$target"
  for file in "$@"; do cp "$package/$file" "$target/"; done
}

package=$(unpack "markdown-it@$MARKDOWN_IT")
put "$package" markdown-it dist/browser/markdown-it.esm.min.mjs LICENSE
echo "$MARKDOWN_IT" > "$here/markdown-it/VERSION"

package=$(unpack "dompurify@$DOMPURIFY")
put "$package" dompurify dist/purify.es.mjs LICENSE LICENSE-MPL
echo "$DOMPURIFY" > "$here/dompurify/VERSION"

package=$(unpack "@highlightjs/cdn-assets@$HIGHLIGHT_JS")
put "$package" highlight.js es/highlight.min.js styles/github.min.css styles/github-dark.min.css LICENSE
echo "$HIGHLIGHT_JS" > "$here/highlight.js/VERSION"

package=$(unpack "chart.js@$CHART_JS")
put "$package" chart.js dist/chart.umd.min.js LICENSE.md
echo "$CHART_JS" > "$here/chart.js/VERSION"

echo "static/vendor: markdown-it $MARKDOWN_IT, dompurify $DOMPURIFY, highlight.js $HIGHLIGHT_JS, chart.js $CHART_JS"
