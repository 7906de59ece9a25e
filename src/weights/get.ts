/**
 * `weights get`: an official checkpoint into the cache, verified. Downloads go to a partial file outside the
 * cache (resumed on the next call when cut), are checked by size and sha256 when the catalog knows them and by a
 * strict load into their preset, and only then renamed into IRLENS_HOME/weights/<family>/<file>: the cache holds
 * complete, verified files or nothing.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadStateDict } from '../models/checkpoint';
import { createModel } from '../models/registry';
import { expectedShapes, loadWeights } from '../models/weights';
import type { OfficialCatalogEntry } from './catalog';
import { downloadResumable } from './download';
import { sha256File } from './hash';
import { cachedWeightsPath, irlensHome, partialDownloadPath } from './home';

export interface GetOptions {
  /** Cache root (default irlensHome()). */
  home?: string;
  /** Base URL replacing the origin (default $IRLENS_WEIGHTS_MIRROR): the file is fetched from <base>/<file>. */
  mirror?: string;
  /** Refuse to use the network (default: $IRLENS_OFFLINE set to anything but '' or '0'). */
  offline?: boolean;
  progress?: boolean;
  /** Called once a download starts (the CLI prints where from). */
  onStart?(url: string, dest: string, resumeAt: number): void;
}

export interface GotWeights {
  entry: OfficialCatalogEntry;
  file: string;
  sha256: string;
  /** false when the file was already in the cache. */
  downloaded: boolean;
}

function envOffline(): boolean {
  const v = process.env.IRLENS_OFFLINE;
  return v !== undefined && v !== '' && v !== '0';
}

/** The URL a file is fetched from: the mirror's <base>/<file name>, else the entry's direct URL. */
export function downloadUrl(entry: OfficialCatalogEntry, mirror = process.env.IRLENS_WEIGHTS_MIRROR): string | undefined {
  if (mirror) return `${mirror.replace(/\/+$/, '')}/${encodeURIComponent(entry.file)}`;
  return entry.url;
}

/** Strict load of a checkpoint file into the entry's preset (throws the loader's one-line error). */
export async function verifyByStrictLoad(entry: OfficialCatalogEntry, file: string): Promise<void> {
  if (!entry.preset) return; // no irlens preset to check against (the catalog note says so)
  const model = createModel(entry.preset, { seed: 0 });
  try {
    const loaded = await loadStateDict(file, { key: entry.paramKey, expected: expectedShapes(model) });
    loadWeights(model, loaded.stateDict, { strict: true, source: `preset ${entry.preset}` });
  } finally {
    model.dispose();
  }
}

/** Returns the cached file of `entry`, downloading and verifying it first when it is not there. */
export async function getOfficialWeights(entry: OfficialCatalogEntry, opts: GetOptions = {}): Promise<GotWeights> {
  const home = opts.home ?? irlensHome();
  const dest = cachedWeightsPath(entry.family, entry.file, home);
  if (fs.existsSync(dest)) return { entry, file: dest, sha256: await sha256File(dest), downloaded: false };
  const url = downloadUrl(entry, opts.mirror ?? process.env.IRLENS_WEIGHTS_MIRROR);
  if (!url)
    throw new Error(
      `weights ${entry.name}: ${entry.source} offers no direct download; download ${entry.file} there and put it at ${dest} (or set IRLENS_WEIGHTS_MIRROR=<base URL>)`,
    );
  if (opts.offline ?? envOffline()) throw new Error(`weights ${entry.name}: offline; download ${url} and put it at ${dest}`);
  const partial = partialDownloadPath(entry.family, entry.file, home);
  const resumeAt = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
  opts.onStart?.(url, dest, resumeAt);
  try {
    await downloadResumable(url, partial, { label: entry.name, progress: opts.progress, expectedBytes: entry.sizeBytes });
  } catch (e) {
    // An HTTP error leaves no file behind; a cut transfer keeps its partial (outside the cache) to resume.
    if (fs.existsSync(partial) && fs.statSync(partial).size === 0) fs.rmSync(partial, { force: true });
    throw new Error(`${(e as Error).message}; or download it by hand into ${dest}`);
  }
  const fail = (why: string): never => {
    fs.rmSync(partial, { force: true });
    throw new Error(`weights ${entry.name}: ${why}; the download from ${url} was removed`);
  };
  const sha256 = await sha256File(partial);
  if (entry.sha256 && sha256 !== entry.sha256.toLowerCase()) fail(`sha256 ${sha256} does not match the catalog's ${entry.sha256}`);
  try {
    await verifyByStrictLoad(entry, partial);
  } catch (e) {
    fail(`the file does not load into ${entry.preset} (${(e as Error).message})`);
  }
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.renameSync(partial, dest); // same file system (both under IRLENS_HOME): atomic
  return { entry, file: dest, sha256, downloaded: true };
}
