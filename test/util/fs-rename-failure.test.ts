import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';

// A rename that fails midway through the set (after an earlier file was already replaced): node:fs is mocked
// for this file only, so the failure happens exactly where a full disk or a vanished directory would cause it.
const failOn = vi.hoisted(() => ({ target: '' }));
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  const renameSync = (from: string, to: string) => {
    if (failOn.target && to === failOn.target && from.endsWith('.tmp')) throw new Error(`EIO: simulated failure renaming to '${to}'`);
    return real.renameSync(from, to);
  };
  return { ...real, renameSync, default: { ...real, renameSync } };
});

import * as fs from 'node:fs';
import { writeFilesAtomic } from '../../src/util/fs';

describe('writeFilesAtomic with a failing rename', () => {
  it('restores the files already replaced and removes temps and backups', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-fs-'));
    try {
      const a = path.join(d, 'a.txt');
      const b = path.join(d, 'b.txt');
      const c = path.join(d, 'c.txt');
      writeFilesAtomic([[a, 'old a'], [b, 'old b']]);
      failOn.target = b;
      expect(() => writeFilesAtomic([[a, 'new a'], [c, 'new c'], [b, 'new b']])).toThrow(/simulated failure/);
      failOn.target = '';
      expect(fs.readFileSync(a, 'utf8')).toBe('old a');
      expect(fs.readFileSync(b, 'utf8')).toBe('old b');
      expect(fs.existsSync(c)).toBe(false);
      expect(fs.readdirSync(d).sort()).toEqual(['a.txt', 'b.txt']);
    } finally {
      fs.rmSync(d, { recursive: true, force: true });
    }
  });
});
