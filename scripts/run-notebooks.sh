#!/usr/bin/env bash
# Executes every notebook (or those given as arguments) headless with the tslab kernel; fails if any fails.
# The kernel is a private kernel spec whose command is this checkout's node_modules/.bin/tslab by absolute path,
# so it runs whatever `tslab` is (or is not) on PATH and whichever tslab spec Jupyter has installed.
# Executed copies go to a temp dir (committed notebooks stay clean), or to $IRLENS_NOTEBOOK_OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

tslab="$root/node_modules/.bin/tslab"
[ -x "$tslab" ] || { echo "run-notebooks: $tslab not found; run npm install first" >&2; exit 1; }
command -v jupyter-nbconvert >/dev/null || { echo "run-notebooks: jupyter-nbconvert not found (Debian: apt-get install jupyter-nbconvert python3-ipykernel)" >&2; exit 1; }

# Notebooks import ../dist/index: build it when missing or older than any source file.
if [ ! -f dist/index.js ] || [ -n "$(find src -name '*.ts' -newer dist/index.js -print -quit)" ]; then
  echo "run-notebooks: building dist/ (missing or older than src/)"
  rm -rf dist # a clean build: a stale dist/x.js would shadow a module moved to dist/x/index.js
  npm run --silent build
fi

# `jupyter notebook` uses the installed tslab spec, not the private one below: say so when its command cannot start.
jupyter --paths --json 2>/dev/null | node -e '
  const fs = require("fs"), path = require("path");
  const dirs = JSON.parse(fs.readFileSync(0, "utf8")).data.map((d) => path.join(d, "kernels", "tslab", "kernel.json"));
  const spec = dirs.find((f) => fs.existsSync(f));
  const onPath = (c) => (process.env.PATH || "").split(":").filter((d) => !d.includes("node_modules")).some((d) => fs.existsSync(path.join(d, c)));
  const bin = spec && JSON.parse(fs.readFileSync(spec, "utf8")).argv[0];
  if (!spec) console.log("run-notebooks: note: no tslab kernel installed for `jupyter notebook` (npx tslab install --python /usr/bin/python3 --binary \"$PWD/node_modules/.bin/tslab\")");
  else if (path.isAbsolute(bin) ? !fs.existsSync(bin) : !onPath(bin))
    console.log(`run-notebooks: warning: ${spec} runs "${bin}", which Jupyter cannot start outside npm; reinstall with: npx tslab install --python /usr/bin/python3 --binary "$PWD/node_modules/.bin/tslab"`);
' || true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/share/kernels/tslab"
printf '{"argv": ["%s", "kernel", "--config-path", "{connection_file}"], "display_name": "TypeScript", "language": "typescript"}\n' \
  "$tslab" >"$work/share/kernels/tslab/kernel.json"
export JUPYTER_PATH="$work/share${JUPYTER_PATH:+:$JUPYTER_PATH}"

out=${IRLENS_NOTEBOOK_OUT:-$work/out}
mkdir -p "$out"
[ $# -gt 0 ] || set -- notebooks/*.ipynb
status=0
for nb in "$@"; do
  start=$(date +%s)
  if jupyter nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=tslab \
      --ExecutePreprocessor.timeout=900 --output-dir "$out" "$nb" 2>"$work/log"; then
    size=$(du -k "$out/$(basename "$nb")" | cut -f1)
    echo "notebook ok: $nb ($(($(date +%s) - start)) s, executed copy ${size} KiB)"
  else
    cat "$work/log" >&2
    echo "notebook FAILED: $nb" >&2
    status=1
  fi
done
exit $status
