/**
 * Extra CC0 / public-domain training images for the shipped tiny weights (weights/, scripts/train-tiny-weights.sh),
 * stored in data/extra/ with the same transformation as the built-in set (largest centred square, Lanczos-3 to
 * 256x256, 8-bit PNG; see data/SOURCES.md). Sources: Debian python3-scipy 1.10 (scipy.misc face/ascent, read through Debian's
 * python3 because they ship as bz2/pickle blobs) and python3-skimage 0.19 (cell.png).
 *
 *   npx tsx data/make_extra_images.ts
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { centerCropSquare, readImage, resizeImage, writePng } from '../src/io/image';
import { BUILTIN_IMAGE_SIZE } from '../src/io/builtin';
import { readNpy } from '../src/io/npy';
import type { ImageF32 } from '../src/io/types';

/** A uint8 HW or HWC .npy as an image in [0,1]. */
function npyImage(file: string): ImageF32 {
  const arr = readNpy(file);
  if (arr.dtype !== 'uint8' || (arr.shape.length !== 2 && arr.shape.length !== 3)) throw new Error(`${file}: expected uint8 HW or HWC`);
  const [height, width, channels = 1] = arr.shape;
  if (channels !== 1 && channels !== 3) throw new Error(`${file}: expected 1 or 3 channels, got ${channels}`);
  return { data: Float32Array.from(arr.data as Uint8Array, (v) => v / 255), height, width, channels };
}

const SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data';

async function main(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'irlens-extra-'));
  try {
    // scipy's blobs are not image files: python (numpy only) writes them out as uint8 .npy, HWC or HW.
    execFileSync('/usr/bin/python3', ['-c', [
      'import sys, warnings; warnings.simplefilter("ignore")',
      'import numpy, scipy.misc',
      'numpy.save(sys.argv[1] + "/face.npy", scipy.misc.face().astype(numpy.uint8))',
      'numpy.save(sys.argv[1] + "/ascent.npy", scipy.misc.ascent().astype(numpy.uint8))',
    ].join('\n'), tmp]);
    const sources: Record<string, string> = {
      ascent: path.join(tmp, 'ascent.npy'),
      cell: path.join(SKIMAGE_DATA, 'cell.png'),
      face: path.join(tmp, 'face.npy'),
    };
    const outDir = path.join(__dirname, 'extra');
    fs.mkdirSync(outDir, { recursive: true });
    for (const [name, source] of Object.entries(sources)) {
      const original = source.endsWith('.npy') ? npyImage(source) : await readImage(source);
      const square = centerCropSquare(original);
      const image = await resizeImage(square, { height: BUILTIN_IMAGE_SIZE, width: BUILTIN_IMAGE_SIZE, kernel: 'lanczos3' });
      const out = path.join(outDir, `${name}.png`);
      await writePng(out, image, { bitDepth: 8 });
      console.log(`${name}: ${original.height}x${original.width}x${original.channels} -> ${out}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
