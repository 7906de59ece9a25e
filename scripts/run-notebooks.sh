#!/usr/bin/env bash
# Executes every notebook headless with the tslab kernel; fails on the first error. Outputs go to a temp dir so
# the committed notebooks stay clean. Run through `npm run notebooks` so node_modules/.bin (tslab) is on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/index.js ] || npm run build
out=$(mktemp -d)
status=0
for nb in notebooks/*.ipynb; do
  echo "notebook: $nb"
  if ! jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=tslab \
      --ExecutePreprocessor.timeout=900 --output-dir "$out" "$nb"; then
    echo "notebook FAILED: $nb" >&2
    status=1
  fi
done
rm -rf "$out"
exit $status
