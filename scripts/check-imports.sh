#!/usr/bin/env bash
# Import hygiene of src/ (CI): no import cycles (madge --circular, type-only imports included), and no module
# importing a layer above its own. Layers, lowest first (docs/CONVENTIONS.md):
#   util (and version.ts) <- engine <- io <- degradations <- models <- weights <- analysis <- pretrain <- cli <- index.ts
# A file may import its own layer and the layers below it. Exits non-zero on any cycle or upward import.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
echo "check-imports: cycles (madge --circular)"
if ! npx --no-install madge --circular --no-spinner --extensions ts src; then
  status=1
fi

echo "check-imports: layers"
graph="$(mktemp)"
trap 'rm -f "$graph"' EXIT
npx --no-install madge --json --no-spinner --extensions ts src >"$graph"
node - "$graph" <<'JS' || status=1
const fs = require('node:fs');
const graph = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
// Lowest first; a module's layer is its first path segment under src/ (a top-level file: its name).
const LAYERS = ['util', 'engine', 'io', 'degradations', 'models', 'weights', 'analysis', 'pretrain', 'cli', 'index'];
const ALIAS = { version: 'util' };
const layerOf = (file) => {
  const top = file.includes('/') ? file.split('/')[0] : file.replace(/\.ts$/, '');
  return ALIAS[top] ?? top;
};
const bad = [];
for (const [file, deps] of Object.entries(graph)) {
  const from = LAYERS.indexOf(layerOf(file));
  if (from < 0) {
    bad.push(`${file}: not in a known layer (${LAYERS.join(', ')}); add its folder to scripts/check-imports.sh`);
    continue;
  }
  for (const dep of deps) {
    const to = LAYERS.indexOf(layerOf(dep));
    if (to > from) bad.push(`${file} imports ${dep}: ${layerOf(dep)} is above ${layerOf(file)}`);
  }
}
if (bad.length) {
  console.error(`check-imports: ${bad.length} upward import(s):`);
  for (const b of bad) console.error(`  ${b}`);
  process.exit(1);
}
console.log(`check-imports: ${Object.keys(graph).length} modules, every import points down the layers`);
JS
exit "$status"
