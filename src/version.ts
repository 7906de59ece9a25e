/** Package root and version, found from this file's location so they work from src/ (tsx), dist/ and notebooks. */
import * as fs from 'node:fs';
import * as path from 'node:path';

function findPackageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: string }).name === 'irlens') return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`irlens: cannot find the package root above ${__dirname}`);
    dir = up;
  }
}

export const PACKAGE_ROOT = findPackageRoot();
export const IRLENS_VERSION: string = (
  JSON.parse(fs.readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;
