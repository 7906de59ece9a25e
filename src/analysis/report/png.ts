/** SVG -> PNG without a browser: sharp (librsvg) rasterises the SVG; fonts come from the system's fontconfig. */
import sharp from 'sharp';

/** Rasterises `svg` at `scale` pixels per SVG unit (default 2, for sharp text). */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * scale }).png().toBuffer();
}
