/**
 * .npz archives (numpy.savez / savez_compressed: a zip of .npy members, stored or deflated), read with fflate.
 * Bounded: every member's declared sizes are checked against the archive before anything is inflated, and an
 * inflated member must have exactly its declared size, so a crafted archive cannot make us allocate more than
 * the archive allows (deflate expands at most ~1032x) or more than the memory limit.
 */
import * as fs from 'node:fs';
import { unzipSync, type UnzipFileInfo } from 'fflate';
import { maxMemoryLimit, formatBytes } from '../util/memory';
import { decodeNpy, type NpyArray } from './npy';

/** Deflate's largest expansion ratio (a run of one byte: 258 bytes per 2 bits, ~1032:1), with a margin. */
const MAX_DEFLATE_RATIO = 1100;

export interface NpzMember {
  /** Array name: the member's file name without '.npy' (numpy.savez's keyword, or arr_0, arr_1, ...). */
  name: string;
  array: NpyArray;
}

function npzError(file: string, what: string): Error {
  return new Error(`npz '${file}': ${what}`);
}

/** Reads every array of a .npz archive, in archive order; `maxBytes` caps the total inflated size. */
export function readNpz(file: string, opts: { maxBytes?: number } = {}): NpzMember[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw npzError(file, err.code === 'ENOENT' ? 'file does not exist' : err.message.split('\n')[0]);
  }
  return decodeNpz(bytes, file, opts);
}

/** Parses .npz bytes (see readNpz); `file` names the archive in errors. */
export function decodeNpz(bytes: Uint8Array, file = '<bytes>', opts: { maxBytes?: number } = {}): NpzMember[] {
  if (bytes.length < 22 || bytes[0] !== 0x50 || bytes[1] !== 0x4b) throw npzError(file, 'not a .npz archive (no zip signature)');
  const limit = maxMemoryLimit(opts.maxBytes);
  let total = 0;
  const check = (f: UnzipFileInfo): boolean => {
    const member = `member '${f.name}'`;
    if (f.name.endsWith('/')) return false; // directory entry
    if (!f.name.endsWith('.npy')) throw npzError(file, `${member} is not a .npy array (an .npz holds only .npy members)`);
    if (f.compression !== 0 && f.compression !== 8) throw npzError(file, `${member} uses compression method ${f.compression}; expected stored (0) or deflate (8)`);
    if (!(f.size >= 0 && f.size <= bytes.length)) throw npzError(file, `${member} declares ${f.size} compressed bytes, more than the archive's ${bytes.length}`);
    const most = f.compression === 0 ? f.size : f.size * MAX_DEFLATE_RATIO + 1024;
    if (!(f.originalSize >= 0 && f.originalSize <= most))
      throw npzError(file, `${member} declares ${f.originalSize} bytes, more than its ${f.size} ${f.compression === 0 ? 'stored' : 'deflated'} bytes can hold`);
    total += f.originalSize;
    if (total > limit)
      throw npzError(file, `${member}: the arrays need ${formatBytes(total)}, over the limit of ${formatBytes(limit)}; raise it with IRLENS_MAX_MEMORY (e.g. 32G)`);
    return true;
  };
  const sizes = new Map<string, number>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter: (f) => {
        const keep = check(f);
        if (keep) sizes.set(f.name, f.originalSize);
        return keep;
      },
    });
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    if (msg.startsWith(`npz '`)) throw e;
    throw npzError(file, `cannot read the archive (${msg})`);
  }
  const out: NpzMember[] = [];
  for (const [name, data] of Object.entries(files)) {
    if (data.length !== sizes.get(name)) throw npzError(file, `member '${name}' inflates to ${data.length} bytes, not the ${sizes.get(name)} it declares`);
    let array: NpyArray;
    try {
      array = decodeNpy(data, `${file}:${name}`);
    } catch (e) {
      throw npzError(file, `member '${name}': ${(e as Error).message.split('\n')[0].replace(/^npy '[^']*': /, '')}`);
    }
    out.push({ name: name.replace(/\.npy$/, ''), array });
  }
  if (out.length === 0) throw npzError(file, 'holds no arrays');
  return out;
}
