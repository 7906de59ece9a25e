/**
 * Static heatmap as SVG: cells, labels on both axes, axis titles, a colour bar, optional cell values, and a mark
 * for undefined (null) cells. Rendered by hand because the only charting library at hand (plotly) needs a
 * browser; the SVG is then rasterised by sharp (png.ts). Text widths are estimated from the font size (the
 * rasteriser's fonts are not measurable from here), with a margin.
 */
import { colorAt, rgbHex, textColorOn } from './colormap';

export interface HeatmapSpec {
  /** Row labels, top to bottom. */
  rows: string[];
  /** Column labels, left to right. */
  cols: string[];
  /** values[row][col]; null = undefined cell (drawn grey with a cross). */
  values: (number | null)[][];
  title: string;
  subtitle?: string;
  rowTitle: string;
  colTitle: string;
  colorbarTitle?: string;
  /** Colour range (default [min(0, min value), max(1, max value)]). */
  zmin?: number;
  zmax?: number;
  /** Write the value in each cell (default: when cells are large enough). */
  cellText?: boolean;
  /** Lines printed under the chart. */
  notes?: string[];
  /** Lines a reader must not miss (e.g. random-init weights): bold red, under the title and again in the footer. */
  warnings?: string[];
  /** Text of each cell instead of the value (lines split at '\n'; null = the value); e.g. value and interval. */
  cellLabels?: (string | null)[][];
}

const FONT = "'DejaVu Sans', 'Liberation Sans', Arial, Helvetica, sans-serif";
const CHAR_W = 0.58; // average advance of DejaVu Sans in em (lower case, digits, dots), slightly rounded up

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function textWidth(text: string, size: number): number {
  return text.length * size * CHAR_W;
}

/** Shortens a label to `max` characters, keeping its end (the most specific part of a dotted path). */
function clip(label: string, max: number): string {
  return label.length <= max ? label : `…${label.slice(label.length - max + 1)}`;
}

/** Colour range covering the data: [min(0, lowest), max(1, highest)]. */
export function valueRange(values: (number | null)[][]): [number, number] {
  let lo = 0;
  let hi = 1;
  for (const row of values) {
    for (const v of row) {
      if (v === null || !Number.isFinite(v)) continue;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  return [lo, hi];
}

function niceTicks(lo: number, hi: number): number[] {
  const span = hi - lo;
  const step = span <= 0.6 ? 0.1 : span <= 1.2 ? 0.2 : 0.5;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + 1e-9; v += step) out.push(Number(v.toFixed(6)));
  return out;
}

export function heatmapSvg(spec: HeatmapSpec): string {
  const { rows, cols, values } = spec;
  if (values.length !== rows.length || values.some((r) => r.length !== cols.length))
    throw new Error(`heatmapSvg: values must be ${rows.length} x ${cols.length} (rows x cols)`);
  const [dlo, dhi] = valueRange(values);
  const zmin = spec.zmin ?? dlo;
  const zmax = spec.zmax ?? dhi;
  const cell = Math.max(14, Math.min(48, Math.floor(900 / Math.max(rows.length, cols.length, 1))));
  const labelSize = Math.min(12, Math.max(8, Math.floor(cell * 0.6)));
  const maxChars = 40;
  const rowLabels = rows.map((r) => clip(r, maxChars));
  const colLabels = cols.map((c) => clip(c, maxChars));
  const rowLabelW = Math.max(0, ...rowLabels.map((l) => textWidth(l, labelSize))) + 8;
  const colLabelH = Math.max(0, ...colLabels.map((l) => textWidth(l, labelSize))) + 8;

  const pad = 16;
  const warnings = spec.warnings ?? [];
  const warnH = warnings.length * 16;
  const titleH = (spec.subtitle ? 48 : 30) + warnH;
  const axisTitle = 20;
  const gridW = cell * cols.length;
  const gridH = cell * rows.length;
  const x0 = pad + axisTitle + rowLabelW;
  const y0 = pad + titleH;
  const barX = x0 + gridW + 24;
  const barW = 16;
  const barLabelW = 40 + (spec.colorbarTitle ? 18 : 0);
  const notes = spec.notes ?? [];
  const width = Math.ceil(
    Math.max(
      barX + barW + barLabelW + pad,
      pad * 2 + textWidth(spec.title, 15) * 1.1, // bold
      pad * 2 + textWidth(spec.subtitle ?? '', 11),
      ...notes.map((n) => pad * 2 + textWidth(n, 10)),
      ...warnings.map((n) => pad * 2 + textWidth(n, 12) * 1.1),
    ),
  );
  const notesY = y0 + gridH + colLabelH + axisTitle + 12;
  const height = Math.ceil(notesY + notes.length * 14 + warnings.length * 16 + pad);
  const labels = spec.cellLabels;
  if (labels && (labels.length !== rows.length || labels.some((r) => r.length !== cols.length)))
    throw new Error(`heatmapSvg: cellLabels must be ${rows.length} x ${cols.length} (rows x cols)`);
  const showText = spec.cellText ?? cell >= (labels ? 40 : 30);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${escapeXml(FONT)}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${pad}" y="${pad + 14}" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`,
  );
  if (spec.subtitle) out.push(`<text x="${pad}" y="${pad + 34}" font-size="11" fill="#555">${escapeXml(spec.subtitle)}</text>`);
  const warning = (text: string, y: number) => `<text x="${pad}" y="${y}" font-size="12" font-weight="bold" fill="#c00000">${escapeXml(text)}</text>`;
  warnings.forEach((w, k) => out.push(warning(w, pad + (spec.subtitle ? 50 : 30) + k * 16)));

  // Cells.
  for (let i = 0; i < rows.length; i++) {
    for (let j = 0; j < cols.length; j++) {
      const v = values[i][j];
      const x = x0 + j * cell;
      const y = y0 + i * cell;
      if (v === null || !Number.isFinite(v)) {
        out.push(
          `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="#d0d0d0" stroke="#ffffff" stroke-width="1"/>`,
          `<path d="M${x + 4} ${y + 4}L${x + cell - 4} ${y + cell - 4}M${x + cell - 4} ${y + 4}L${x + 4} ${y + cell - 4}" stroke="#808080" stroke-width="1.5"/>`,
        );
        continue;
      }
      const rgb = colorAt((v - zmin) / (zmax - zmin || 1));
      out.push(`<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="${rgbHex(rgb)}" stroke="#ffffff" stroke-width="0.5"/>`);
      if (showText) {
        const lines = (labels?.[i][j] ?? v.toFixed(2)).split('\n');
        // As large as fits: the cell's height for the lines, its width for the longest one.
        const widest = Math.max(...lines.map((l) => l.length));
        const fs = Math.min(11, (cell * 0.32) / Math.max(1, 0.75 * lines.length), (cell - 4) / (widest * CHAR_W));
        const top = y + cell / 2 + fs * 0.35 - ((lines.length - 1) * fs * 1.15) / 2;
        const spans = lines.map((l, k) => `<tspan x="${x + cell / 2}" y="${(top + k * fs * 1.15).toFixed(2)}">${escapeXml(l)}</tspan>`).join('');
        out.push(`<text font-size="${fs.toFixed(2)}" text-anchor="middle" fill="${textColorOn(rgb)}">${spans}</text>`);
      }
    }
  }

  // Row labels (right-aligned against the grid) and column labels (rotated, reading upwards).
  rowLabels.forEach((l, i) =>
    out.push(`<text x="${x0 - 6}" y="${y0 + i * cell + cell / 2 + labelSize * 0.35}" font-size="${labelSize}" text-anchor="end">${escapeXml(l)}</text>`),
  );
  colLabels.forEach((l, j) => {
    const cx = x0 + j * cell + cell / 2 + labelSize * 0.35;
    const cy = y0 + gridH + 6;
    out.push(`<text x="${cx}" y="${cy}" font-size="${labelSize}" text-anchor="end" transform="rotate(-90 ${cx} ${cy})">${escapeXml(l)}</text>`);
  });

  // Axis titles.
  const rowTitleX = pad + 12;
  const rowTitleY = y0 + gridH / 2;
  out.push(
    `<text x="${rowTitleX}" y="${rowTitleY}" font-size="12" font-weight="bold" text-anchor="middle" transform="rotate(-90 ${rowTitleX} ${rowTitleY})">${escapeXml(spec.rowTitle)}</text>`,
    `<text x="${x0 + gridW / 2}" y="${y0 + gridH + colLabelH + 16}" font-size="12" font-weight="bold" text-anchor="middle">${escapeXml(spec.colTitle)}</text>`,
  );

  // Colour bar: one thin rect per step (SVG gradients render the same, but steps match the cells exactly).
  const barH = Math.max(gridH, 120);
  const steps = 64;
  for (let s = 0; s < steps; s++) {
    const t = 1 - (s + 0.5) / steps;
    out.push(`<rect x="${barX}" y="${(y0 + (s * barH) / steps).toFixed(2)}" width="${barW}" height="${(barH / steps + 0.5).toFixed(2)}" fill="${rgbHex(colorAt(t))}"/>`);
  }
  out.push(`<rect x="${barX}" y="${y0}" width="${barW}" height="${barH}" fill="none" stroke="#444" stroke-width="0.5"/>`);
  for (const tick of niceTicks(zmin, zmax)) {
    const y = y0 + barH * (1 - (tick - zmin) / (zmax - zmin || 1));
    out.push(
      `<line x1="${barX + barW}" y1="${y.toFixed(2)}" x2="${barX + barW + 4}" y2="${y.toFixed(2)}" stroke="#444"/>`,
      `<text x="${barX + barW + 6}" y="${(y + 4).toFixed(2)}" font-size="10">${tick.toFixed(1)}</text>`,
    );
  }
  if (spec.colorbarTitle) {
    const tx = barX + barW + 44;
    const ty = y0 + barH / 2;
    out.push(`<text x="${tx}" y="${ty}" font-size="11" text-anchor="middle" transform="rotate(-90 ${tx} ${ty})">${escapeXml(spec.colorbarTitle)}</text>`);
  }

  notes.forEach((n, k) => out.push(`<text x="${pad}" y="${notesY + k * 14}" font-size="10" fill="#555">${escapeXml(n)}</text>`));
  warnings.forEach((w, k) => out.push(warning(w, notesY + notes.length * 14 + 4 + k * 16)));
  out.push('</svg>');
  return out.join('\n');
}
