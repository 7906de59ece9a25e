/**
 * Resumable HTTP download into a partial file: an existing partial is continued with a Range request (206), or
 * started over when the server ignores the range (200). Uses Node's built-in fetch (undici): redirects (GitHub
 * release assets redirect to a CDN) and streaming bodies, nothing to add. The bytes are streamed to disk: no
 * size the server declares decides an allocation.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { once } from 'node:events';
import { SingleBar } from 'cli-progress';

export interface DownloadOptions {
  /** Label for messages (the catalog name). */
  label: string;
  /** Show a progress bar on stderr. */
  progress?: boolean;
  /** Bytes the complete file must have, when known. */
  expectedBytes?: number;
}

export interface DownloadResult {
  bytes: number;
  /** Bytes already present from an earlier, interrupted download. */
  resumedFrom: number;
}

function sizeOf(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0;
  }
}

function causeOf(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  return err.cause?.code ?? err.cause?.message ?? err.message;
}

/** Total size from a 206's Content-Range ("bytes 100-199/200"), checked against the offset we asked for. */
function parseContentRange(header: string | null, offset: number, label: string): number | undefined {
  const m = header ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim()) : null;
  if (!m) throw new Error(`weights ${label}: the server answered a range request without a valid Content-Range ('${header}')`);
  if (Number(m[1]) !== offset) throw new Error(`weights ${label}: asked to resume at byte ${offset}, the server sent bytes from ${m[1]}`);
  return m[3] === '*' ? undefined : Number(m[3]);
}

/** Downloads `url` into `partial`, resuming what is there; the caller verifies and moves it into place. */
export async function downloadResumable(url: string, partial: string, opts: DownloadOptions): Promise<DownloadResult> {
  fs.mkdirSync(path.dirname(partial), { recursive: true });
  let offset = sizeOf(partial);
  if (opts.expectedBytes !== undefined && offset > opts.expectedBytes) {
    fs.rmSync(partial, { force: true }); // longer than the file can be: not ours to continue
    offset = 0;
  }
  if (opts.expectedBytes !== undefined && offset === opts.expectedBytes) return { bytes: offset, resumedFrom: offset };
  let res: Response | undefined;
  // One retry: a reused keep-alive connection that the server has just closed fails before any byte arrives.
  for (let attempt = 0; res === undefined; attempt++) {
    try {
      res = await fetch(url, { headers: offset > 0 ? { Range: `bytes=${offset}-` } : {}, redirect: 'follow' });
    } catch (e) {
      if (attempt >= 1) throw new Error(`weights ${opts.label}: cannot reach ${url} (${causeOf(e)})`);
    }
  }
  if (res.status === 416 && offset > 0) {
    await res.body?.cancel();
    return { bytes: offset, resumedFrom: offset }; // the partial already holds the whole file
  }
  if (res.status !== 200 && res.status !== 206) {
    await res.body?.cancel();
    throw new Error(`weights ${opts.label}: HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''} from ${url}`);
  }
  let total: number | undefined;
  if (res.status === 206) total = parseContentRange(res.headers.get('content-range'), offset, opts.label);
  else {
    offset = 0; // the server ignored the range: start over
    const len = res.headers.get('content-length');
    total = len !== null && /^\d+$/.test(len) ? Number(len) : undefined;
  }
  if (total !== undefined && opts.expectedBytes !== undefined && total !== opts.expectedBytes)
    throw new Error(`weights ${opts.label}: ${url} is ${total} bytes, the catalog expects ${opts.expectedBytes}`);
  const resumedFrom = offset;
  const out = fs.createWriteStream(partial, { flags: offset > 0 ? 'a' : 'w' });
  const bar = opts.progress ? new SingleBar({ format: `${opts.label} [{bar}] {percentage}% {value}/{total} bytes`, stream: process.stderr, hideCursor: true }) : undefined;
  bar?.start(total ?? 0, offset);
  let written = offset;
  try {
    if (!res.body) throw new Error('empty body');
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await once(out, 'drain');
      written += chunk.length;
      if (opts.expectedBytes !== undefined && written > opts.expectedBytes) throw new Error(`more than the ${opts.expectedBytes} bytes expected`);
      bar?.update(written);
    }
    out.end();
    await once(out, 'finish');
  } catch (e) {
    out.destroy();
    await once(out, 'close').catch(() => undefined);
    bar?.stop();
    throw new Error(
      `weights ${opts.label}: download from ${url} interrupted after ${written}${total !== undefined ? ` of ${total}` : ''} bytes (${causeOf(e)}); run the same command again to resume`,
    );
  }
  bar?.stop();
  if (total !== undefined && written !== total)
    throw new Error(`weights ${opts.label}: download from ${url} ended after ${written} of ${total} bytes; run the same command again to resume`);
  return { bytes: written, resumedFrom };
}
