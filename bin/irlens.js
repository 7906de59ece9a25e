#!/usr/bin/env node
// Installed entry point: runs the compiled CLI (npm run build / prepare produces dist/).
require('../dist/cli/main.js').main(process.argv).then((code) => {
  process.exitCode = code;
});
