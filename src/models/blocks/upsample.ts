/**
 * The pixel-shuffle upsamplers of SwinIR (and EDT, which reuses them), with the official Sequential indices:
 * Upsample: scale 2^n -> n x [conv F->4F 3x3, PixelShuffle(2)], scale 3 -> [conv F->9F, PixelShuffle(3)];
 * UpsampleOneStep: [conv F->out*s^2 3x3, PixelShuffle(s)].
 */
import { Module, Sequential } from '../module';
import { Conv2d, PixelShuffle } from '../layers';

export function upsample(scale: number, numFeat: number): Sequential {
  const items: Module[] = [];
  if ((scale & (scale - 1)) === 0) {
    for (let i = 0; i < Math.log2(scale); i++) items.push(new Conv2d(numFeat, 4 * numFeat, 3), PixelShuffle(2));
  } else if (scale === 3) {
    items.push(new Conv2d(numFeat, 9 * numFeat, 3), PixelShuffle(3));
  } else {
    throw new Error(`upscale: scale ${scale} is not supported (expected 2^n or 3)`);
  }
  return new Sequential(items);
}

export function upsampleOneStep(scale: number, numFeat: number, outChannels: number): Sequential {
  return new Sequential([new Conv2d(numFeat, outChannels * scale * scale, 3), PixelShuffle(scale)]);
}
