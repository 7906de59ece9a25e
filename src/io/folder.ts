/**
 * Folder datasets: a deterministic listing of the image files under a directory and a lazy, batched loader that
 * keeps memory bounded (at most two batches decoded at a time) for DIV2K-sized folders.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ImageF32 } from './types';
import { readImage, type Channels } from './image';

export const IMAGE_EXTENSIONS: readonly string[] = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp'];

export interface ListImagesOptions {
  /** Descend into sub-directories (default true). */
  recursive?: boolean;
}

function isImageName(name: string): boolean {
  return IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** Byte order of the UTF-8 relative paths: independent of locale and of Intl collation, like Python's sorted(). */
function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Image files under `dir` (extensions .png .jpg .jpeg .tif .tiff .webp, any case), sorted by their path relative
 * to `dir` with '/' separators in byte order, so 'a.png' < 'a/b.png' < 'b.png' on every machine. Returned paths
 * are path.join(dir, relative). Hidden entries (name starting with '.', e.g. macOS '._x.png' or irlens temp files)
 * are skipped; symbolic links are followed, each real directory visited once.
 */
export function listImages(dir: string, options: ListImagesOptions = {}): string[] {
  const recursive = options.recursive ?? true;
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new Error(`image folder '${dir}': does not exist`);
  }
  if (!st.isDirectory()) throw new Error(`image folder '${dir}': not a directory`);

  const relatives: string[] = [];
  const visited = new Set<string>();
  const walk = (relDir: string): void => {
    const absDir = path.join(dir, relDir);
    const real = fs.realpathSync(absDir);
    if (visited.has(real)) return;
    visited.add(real);
    for (const entry of fs.readdirSync(absDir, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const rel = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
      let isDir = entry.isDirectory();
      let isFile = entry.isFile();
      if (entry.isSymbolicLink()) {
        const target = fs.statSync(path.join(dir, rel), { throwIfNoEntry: false });
        isDir = target?.isDirectory() ?? false;
        isFile = target?.isFile() ?? false;
      }
      if (isDir && recursive) walk(rel);
      else if (isFile && isImageName(entry.name)) relatives.push(rel);
    }
  };
  walk('');
  if (relatives.length === 0) {
    throw new Error(
      `image folder '${dir}': no images found${recursive ? ' (searched recursively)' : ''} ` +
        `(expected ${IMAGE_EXTENSIONS.join(' ')} files)`,
    );
  }
  return relatives.sort(compareBytes).map((rel) => path.join(dir, rel));
}

export interface LoadImagesOptions {
  /** Images per batch (default 8). */
  batchSize?: number;
  /** Force 1 or 3 channels (see readImage). */
  channels?: Channels;
  /** Applied to each decoded image before batching (crop, resize, ...). */
  transform?: (image: ImageF32, file: string) => ImageF32 | Promise<ImageF32>;
}

export interface ImageBatch {
  /** Index of the first file of this batch in `files`. */
  start: number;
  files: string[];
  images: ImageF32[];
}

/**
 * Reads `files` lazily in batches. The images of one batch are decoded concurrently (sharp works on libuv's
 * thread pool), and the next batch is decoded while the caller works on the current one; nothing else is kept,
 * so memory stays at about two batches whatever the number of files.
 */
export async function* loadImages(files: readonly string[], options: LoadImagesOptions = {}): AsyncGenerator<ImageBatch> {
  const batchSize = options.batchSize ?? 8;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`loadImages: option batchSize must be a positive integer, got ${batchSize}`);
  }
  const decodeOne = async (file: string): Promise<ImageF32> => {
    const image = await readImage(file, { channels: options.channels });
    return options.transform ? options.transform(image, file) : image;
  };
  const decodeBatch = (start: number): Promise<ImageBatch> => {
    const batchFiles = files.slice(start, start + batchSize);
    return Promise.all(batchFiles.map(decodeOne)).then((images) => ({ start, files: batchFiles, images }));
  };

  let pending: Promise<ImageBatch> | undefined = files.length > 0 ? decodeBatch(0) : undefined;
  for (let start = 0; pending !== undefined; start += batchSize) {
    const current = await pending;
    const next = start + batchSize;
    pending = next < files.length ? decodeBatch(next) : undefined;
    // Avoid an unhandled rejection if the caller stops before awaiting the prefetched batch.
    pending?.catch(() => undefined);
    yield current;
  }
}
