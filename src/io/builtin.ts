/**
 * The built-in image set: 10 CC0 / public-domain photographs from scikit-image's sample data, stored in data/ as
 * 256x256 PNGs (largest centred square, then Lanczos-3 downscaling; RGB kept RGB, gray kept gray). Licences,
 * authors and the exact transformation are in data/SOURCES.md; data/make_builtin_images.ts regenerates them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ImageF32 } from './types';
import { centerCropSquare, readImage, resizeImage, type Channels, type ResizeKernel } from './image';

/** Side of the stored square images. */
export const BUILTIN_IMAGE_SIZE = 256;

export interface BuiltinImageInfo {
  /** File stem in data/ and the key used by loadBuiltinImages({ names }). */
  name: string;
  /** Channels as stored: 3 (RGB) or 1 (gray). */
  channels: Channels;
}

/** Sorted by name. Keep in sync with data/SOURCES.md and data/make_builtin_images.ts. */
export const BUILTIN_IMAGES: readonly BuiltinImageInfo[] = [
  { name: 'astronaut', channels: 3 },
  { name: 'brick', channels: 1 },
  { name: 'camera', channels: 1 },
  { name: 'chelsea', channels: 3 },
  { name: 'coffee', channels: 3 },
  { name: 'grass', channels: 1 },
  { name: 'gravel', channels: 1 },
  { name: 'hubble_deep_field', channels: 3 },
  { name: 'retina', channels: 3 },
  { name: 'rocket', channels: 3 },
];

let cachedDataDir: string | undefined;

/**
 * data/ of the irlens package, found by walking up from this file to the package.json named "irlens": the same
 * code then works from src/io (tsx, vitest, notebooks) and from dist/src/io (compiled).
 */
export function packageDataDir(): string {
  if (cachedDataDir !== undefined) return cachedDataDir;
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'irlens') {
          cachedDataDir = path.join(dir, 'data');
          return cachedDataDir;
        }
      } catch {
        // not JSON we can read: keep walking up
      }
    }
    if (path.dirname(dir) === dir) throw new Error(`builtin images: no irlens package.json above '${__dirname}'`);
  }
}

/** Name and absolute path of each built-in image, sorted by name. */
export function builtinImages(): { name: string; path: string }[] {
  const dir = packageDataDir();
  return BUILTIN_IMAGES.map(({ name }) => ({ name, path: path.join(dir, `${name}.png`) }));
}

export interface LoadBuiltinOptions {
  /** Force 1 or 3 channels; pass 3 to stack all images into one batch (gray ones are repeated). */
  channels?: Channels;
  /** Resize every image to size x size (from the stored 256x256) with `kernel`. Default: keep 256. */
  size?: number;
  /** Resampling kernel for `size` (default 'lanczos3'). */
  kernel?: ResizeKernel;
  /** Subset to load, by name; default all, in name order. */
  names?: readonly string[];
}

/** Decodes the built-in images (all, or `names` in the order given). */
export async function loadBuiltinImages(options: LoadBuiltinOptions = {}): Promise<{ name: string; image: ImageF32 }[]> {
  const all = builtinImages();
  const { size, kernel, channels } = options;
  if (size !== undefined && (!Number.isInteger(size) || size < 1)) {
    throw new Error(`loadBuiltinImages: option size must be a positive integer, got ${size}`);
  }
  const selected = (options.names ?? all.map((e) => e.name)).map((name) => {
    const entry = all.find((e) => e.name === name);
    if (!entry) throw new Error(`loadBuiltinImages: unknown image '${name}' (known: ${all.map((e) => e.name).join(', ')})`);
    return entry;
  });
  return Promise.all(
    selected.map(async ({ name, path: file }) => {
      let image = await readImage(file, { channels });
      if (size !== undefined && (image.height !== size || image.width !== size)) {
        image = await resizeImage(centerCropSquare(image), { height: size, width: size, kernel });
      }
      return { name, image };
    }),
  );
}
