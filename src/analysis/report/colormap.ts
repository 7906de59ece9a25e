/**
 * The colour scale shared by the interactive (plotly) and static (SVG/PNG) heatmaps: plotly's own 'Viridis'
 * stops, copied here so the PNG and the HTML show identical colours for identical values (plotly would
 * otherwise be the only place that knows them, and it cannot run without a browser).
 */

/** plotly.js 'Viridis' colorscale: [position in [0,1], hex colour]. */
export const VIRIDIS: readonly (readonly [number, string])[] = [
  [0, '#440154'],
  [0.06274509803921569, '#48186a'],
  [0.12549019607843137, '#472d7b'],
  [0.18823529411764706, '#424086'],
  [0.25098039215686274, '#3b528b'],
  [0.3137254901960784, '#33638d'],
  [0.3764705882352941, '#2c728e'],
  [0.4392156862745098, '#26828e'],
  [0.5019607843137255, '#21918c'],
  [0.5647058823529412, '#1fa088'],
  [0.6274509803921569, '#28ae80'],
  [0.6901960784313725, '#3fbc73'],
  [0.7529411764705882, '#5ec962'],
  [0.8156862745098039, '#84d44b'],
  [0.8784313725490196, '#addc30'],
  [0.9411764705882353, '#d8e219'],
  [1, '#fde725'],
];

function hexToRgb(hex: string): [number, number, number] {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/** Colour of `t` in [0,1] (clamped) by linear RGB interpolation between stops, as plotly does. */
export function colorAt(t: number, scale: readonly (readonly [number, string])[] = VIRIDIS): [number, number, number] {
  const x = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  let k = 1;
  while (k < scale.length - 1 && scale[k][0] < x) k++;
  const [p0, c0] = scale[k - 1];
  const [p1, c1] = scale[k];
  const f = p1 === p0 ? 0 : (x - p0) / (p1 - p0);
  const a = hexToRgb(c0);
  const b = hexToRgb(c1);
  return [0, 1, 2].map((i) => Math.round(a[i] + f * (b[i] - a[i]))) as [number, number, number];
}

export function rgbHex([r, g, b]: [number, number, number]): string {
  return `#${[r, g, b].map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

/** Black or white, whichever reads better on `rgb` (relative luminance threshold). */
export function textColorOn([r, g, b]: [number, number, number]): string {
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 ? '#000000' : '#ffffff';
}
