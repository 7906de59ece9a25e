/**
 * Regenerates the built-in image set in data/ from scikit-image's sample data (Debian python3-skimage).
 *
 *   npx tsx data/make_builtin_images.ts [SKIMAGE_DATA_DIR]
 *
 * Default source: /usr/lib/python3/dist-packages/skimage/data. Transformation (documented in data/SOURCES.md):
 * largest centred square (offset floor((long - short) / 2)), Lanczos-3 resize to 256x256 through irlens's
 * resizeImage (libvips via sharp, 16-bit intermediate), 8-bit PNG; RGB stays RGB, gray stays gray.
 */
import * as path from 'node:path';
import { centerCropSquare, readImage, resizeImage, writePng } from '../src/io/image';
import { BUILTIN_IMAGE_SIZE, BUILTIN_IMAGES } from '../src/io/builtin';

/** irlens name -> file in skimage/data (the source of the docstring licences quoted in SOURCES.md). */
const SOURCE_FILES: Record<string, string> = {
  astronaut: 'astronaut.png',
  brick: 'brick.png',
  camera: 'camera.png',
  chelsea: 'chelsea.png',
  coffee: 'coffee.png',
  grass: 'grass.png',
  gravel: 'gravel.png',
  hubble_deep_field: 'hubble_deep_field.jpg',
  retina: 'retina.jpg',
  rocket: 'rocket.jpg',
};

async function main(): Promise<void> {
  const sourceDir = process.argv[2] ?? '/usr/lib/python3/dist-packages/skimage/data';
  for (const { name, channels } of BUILTIN_IMAGES) {
    const source = path.join(sourceDir, SOURCE_FILES[name]);
    const original = await readImage(source);
    if (original.channels !== channels) throw new Error(`${source}: expected ${channels} channels, got ${original.channels}`);
    const square = centerCropSquare(original);
    const image = await resizeImage(square, { height: BUILTIN_IMAGE_SIZE, width: BUILTIN_IMAGE_SIZE, kernel: 'lanczos3' });
    const out = path.join(__dirname, `${name}.png`);
    await writePng(out, image, { bitDepth: 8 });
    console.log(`${name}: ${original.height}x${original.width}x${original.channels} -> ${out}`);
  }
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
