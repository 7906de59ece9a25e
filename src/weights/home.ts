/** Where downloaded weights live: IRLENS_HOME (default ~/.cache/irlens), weights/<family>/<file>; partials apart. */
import * as os from 'node:os';
import * as path from 'node:path';

/** The irlens cache root: $IRLENS_HOME, or ~/.cache/irlens. */
export function irlensHome(env: NodeJS.ProcessEnv = process.env): string {
  const home = env.IRLENS_HOME;
  if (home !== undefined && home !== '') return path.resolve(home);
  return path.join(os.homedir(), '.cache', 'irlens');
}

/** The cache path of a complete, verified weights file. */
export function cachedWeightsPath(family: string, file: string, home = irlensHome()): string {
  return path.join(home, 'weights', family, file);
}

/**
 * Where an unfinished download grows. Kept outside weights/ so the cache only ever holds complete, verified
 * files; a cut download stays here and the next `weights get` resumes it with an HTTP Range request.
 */
export function partialDownloadPath(family: string, file: string, home = irlensHome()): string {
  return path.join(home, 'partial', family, `${file}.part`);
}
