import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFilesAtomic } from '../../src/util/fs';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-fs-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('writeFilesAtomic', () => {
  it('writes every file of the set and leaves no temp files', () => {
    const d = tmp();
    writeFilesAtomic([
      [path.join(d, 'r.json'), '{"a":1}'],
      [path.join(d, 'sub', 'r.html'), '<p>x</p>'],
      [path.join(d, 'r.png'), new Uint8Array([1, 2, 3])],
    ]);
    expect(fs.readFileSync(path.join(d, 'r.json'), 'utf8')).toBe('{"a":1}');
    expect(fs.readFileSync(path.join(d, 'sub', 'r.html'), 'utf8')).toBe('<p>x</p>');
    expect([...fs.readFileSync(path.join(d, 'r.png'))]).toEqual([1, 2, 3]);
    expect(fs.readdirSync(d).sort()).toEqual(['r.json', 'r.png', 'sub']);
  });

  it('replaces a previous set whole', () => {
    const d = tmp();
    const set = (v: string) => [[path.join(d, 'a.txt'), `a${v}`], [path.join(d, 'b.txt'), `b${v}`]] as [string, string][];
    writeFilesAtomic(set('1'));
    writeFilesAtomic(set('2'));
    expect(['a.txt', 'b.txt'].map((f) => fs.readFileSync(path.join(d, f), 'utf8'))).toEqual(['a2', 'b2']);
    expect(fs.readdirSync(d).sort()).toEqual(['a.txt', 'b.txt']);
  });

  it('keeps the previous set untouched and removes its temps when a file in the middle fails', () => {
    const d = tmp();
    const a = path.join(d, 'r.json');
    const b = path.join(d, 'r.html');
    const c = path.join(d, 'r.png');
    writeFilesAtomic([[a, 'old a'], [c, 'old c']]);
    fs.mkdirSync(b); // the middle target is a directory: it cannot become a file
    expect(() => writeFilesAtomic([[a, 'new a'], [b, 'new b'], [c, 'new c']])).toThrow(/r\.html/);
    expect(fs.readFileSync(a, 'utf8')).toBe('old a');
    expect(fs.readFileSync(c, 'utf8')).toBe('old c');
    expect(fs.statSync(b).isDirectory()).toBe(true);
    expect(fs.readdirSync(d).sort()).toEqual(['r.html', 'r.json', 'r.png']);
  });
});
