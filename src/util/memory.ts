/**
 * Memory estimates of requests whose size the input decides (image decodes, Gram matrices, benchmark inputs)
 * and the limit they are checked against before anything is allocated, so a small file or a typo in an option
 * fails with the estimate and the option to change instead of taking the machine down.
 */

/** Default ceiling of one estimated request: 4 GiB (env IRLENS_MAX_MEMORY, e.g. "16G", raises it). */
export const DEFAULT_MAX_MEMORY_BYTES = 4 * 2 ** 30;

/** Parses a byte count: 4096, 512M, 8G, 1.5T (k/M/G/T suffixes are powers of 1024, an optional trailing B). */
export function parseBytes(text: string, option = '--max-memory'): number {
  const m = /^\s*(\d+(?:\.\d+)?(?:e\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(text);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 } as const;
  const n = m ? Number(m[1]) * mult[m[2].toLowerCase() as keyof typeof mult] : NaN;
  if (!Number.isFinite(n) || n < 1) throw new Error(`${option}: expected a byte count such as 512M or 8G, got '${text}'`);
  return Math.round(n);
}

/** The limit in force: `maxBytes`, else IRLENS_MAX_MEMORY, else DEFAULT_MAX_MEMORY_BYTES. */
export function maxMemoryLimit(maxBytes?: number): number {
  if (maxBytes !== undefined) return maxBytes;
  const env = process.env.IRLENS_MAX_MEMORY;
  return env !== undefined && env !== '' ? parseBytes(env, 'IRLENS_MAX_MEMORY') : DEFAULT_MAX_MEMORY_BYTES;
}

/** 12_800_000_000 -> '11.9 GiB'. */
export function formatBytes(n: number): string {
  for (const [unit, v] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (n >= v) return `${+(n / v).toPrecision(3)} ${unit}`;
  }
  return `${n} B`;
}

/**
 * Throws `<what> needs about <estimate> (<detail>), over the limit of <limit>; <remedy>` when `bytes` exceeds the
 * limit. `remedy` names the option that changes the estimate or raises the limit.
 */
export function requireMemory(bytes: number, what: string, remedy: string, maxBytes?: number): void {
  const limit = maxMemoryLimit(maxBytes);
  if (!(bytes <= limit)) {
    throw new Error(`${what} needs about ${formatBytes(bytes)}, over the limit of ${formatBytes(limit)}; ${remedy}`);
  }
}

/**
 * Decoding an image to float32 HWC: the raw samples (1-2 bytes each, libvips) plus the float32 copy, and the
 * tensor made from it.
 */
export function imageDecodeBytes(width: number, height: number, channels: number): number {
  return width * height * channels * 4 * 2;
}

/**
 * Linear-kernel CKA on (n, d) feature matrices: two n x n float64 Gram matrices plus one centred copy, and the
 * float64 copies of the features.
 */
export function gramBytes(n: number, dimsX: number, dimsY: number): number {
  return 3 * n * n * 8 + n * (dimsX + dimsY) * 8;
}

/**
 * A forward pass at batch x height x width: the input and output images and, as a floor, a few feature maps of
 * `width` channels alive at once (attention maps of windowed models are smaller than this for their windows).
 */
export function forwardBytes(batch: number, height: number, width: number, channels: number, features: number): number {
  const pixels = batch * height * width;
  return pixels * channels * 4 * 2 + pixels * features * 4 * 4;
}
