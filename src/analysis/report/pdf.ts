/**
 * SVG -> PDF for publication figures: pdfkit writes the PDF and svg-to-pdfkit draws the SVG into it as vector
 * paths and text (sharp/libvips cannot write PDF). The page is the SVG's own size in points, so the figure keeps
 * its proportions and stays sharp at any zoom. Text uses pdfkit's built-in Helvetica (no font files needed).
 */
import PDFDocument from 'pdfkit';
import SVGtoPDF from 'svg-to-pdfkit';

function svgSize(svg: string): [number, number] {
  const m = /<svg[^>]*\bwidth="([\d.]+)"[^>]*\bheight="([\d.]+)"/.exec(svg);
  if (!m) throw new Error('svgToPdf: the SVG has no numeric width and height');
  return [Number(m[1]), Number(m[2])];
}

/** The SVG as a one-page vector PDF. */
export function svgToPdf(svg: string, info: { title?: string; subject?: string } = {}): Promise<Buffer> {
  const [width, height] = svgSize(svg);
  // A fixed CreationDate keeps the bytes a function of the figure (reproducible reports).
  const doc = new PDFDocument({ size: [width, height], margin: 0, autoFirstPage: true, info: { Title: info.title, Subject: info.subject, Creator: 'irlens', Producer: 'irlens (pdfkit)', CreationDate: new Date(0) } });
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    doc.on('data', (c: Buffer) => chunks.push(c));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    try {
      SVGtoPDF(doc, svg, 0, 0, { width, height, assumePt: true, fontCallback: (_family: string, bold: boolean) => (bold ? 'Helvetica-Bold' : 'Helvetica') });
      doc.end();
    } catch (e) {
      reject(e);
    }
  });
}
