import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');

describe('an uncaught error in a library script after the wasm backend started', () => {
  it('prints the error and its stack, not the minified emscripten bundle', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-uncaught-'));
    const script = path.join(dir, 'script.ts');
    const backend = path.join(ROOT, 'src', 'engine', 'backend').replace(/\\/g, '/');
    fs.writeFileSync(script, `import { initBackend } from '${backend}';\nasync function main() { await initBackend('wasm'); throw new Error('irlens-test failure'); }\nvoid main();\n`);
    try {
      const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [script], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain('irlens-test failure');
      expect(r.stderr).not.toContain('tfjs-backend-wasm.js');
      expect(r.stderr.length).toBeLessThan(4000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
