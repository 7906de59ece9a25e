/** Reports: self-contained HTML pages (plotly inlined), static SVG/PNG heatmaps, CKA study reports. */
export * from './colormap';
export * from './html';
export * from './heatmap-svg';
export * from './png';
export * from './pdf';
export * from './cka-report';
export * from './plotly';
