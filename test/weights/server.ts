/** A loopback HTTP file server for the weights tests: Range requests, a cut connection on demand, request log. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FileServer {
  base: string;
  /** Every request: path and Range header. */
  requests: { path: string; range?: string }[];
  /** Cut the next response for this path after this many body bytes (once). */
  cutNext(path: string, afterBytes: number): void;
  close(): Promise<void>;
}

export async function startFileServer(files: Record<string, Uint8Array>): Promise<FileServer> {
  const requests: FileServer['requests'] = [];
  const cuts = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
    const range = req.headers.range;
    requests.push({ path: url, ...(range ? { range } : {}) });
    const body = files[url];
    if (!body) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    let start = 0;
    const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
    if (m) start = Number(m[1]);
    if (start >= body.length && m) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      return;
    }
    const part = body.subarray(start);
    const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'content-length': part.length, 'accept-ranges': 'bytes' };
    if (m) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
    res.writeHead(m ? 206 : 200, headers);
    const cut = cuts.get(url);
    if (cut !== undefined) {
      cuts.delete(url);
      res.write(part.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(part);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    base: `http://127.0.0.1:${port}`,
    requests,
    cutNext: (p, n) => cuts.set(p, n),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
