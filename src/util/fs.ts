/** File helpers shared by every writer: outputs appear whole or not at all. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes `data` to `file` through a temp file in the same directory and a rename (atomic on POSIX). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw writeError(file, e);
  }
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw writeError(file, e);
  }
}

/** "cannot write '<file>': <reason>" for a failed write, naming the target rather than the temp file. */
export function writeError(file: string, e: unknown): Error {
  const code = (e as NodeJS.ErrnoException)?.code;
  const reasons: Record<string, string> = {
    EISDIR: 'it is a directory',
    ENOTDIR: 'a parent path is a file, not a directory',
    EEXIST: 'a parent path is a file, not a directory',
    EROFS: 'the file system is read-only',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
  };
  const reason = (code && reasons[code]) ?? String((e as Error)?.message ?? e).split('\n')[0];
  return new Error(`cannot write '${file}': ${reason}`);
}

/** Async variant of writeFileAtomic for large buffers. */
export async function writeFileAtomicAsync(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await fs.promises.mkdir(dir, { recursive: true }).catch((e: unknown) => {
    throw writeError(file, e);
  });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await fs.promises.writeFile(tmp, data);
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw writeError(file, e);
  }
}

/** Throws a one-line error naming the option when `file` does not exist or is not a regular file. */
export function requireFile(file: string, option: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new Error(`${option}: file '${file}' does not exist`);
  }
  if (!st.isFile()) throw new Error(`${option}: '${file}' is not a regular file`);
}

/**
 * Writes a set of files all or none: every file goes to a temp name in its own directory first, then all are
 * renamed into place. If any write or rename fails, the temps are removed and no target is touched before the
 * renames start; a rename failing midway (rare: the targets were checked first) restores the files it had
 * already replaced from their backups, so a previous good output set is never lost.
 */
export function writeFilesAtomic(files: readonly (readonly [string, string | Uint8Array])[]): void {
  const stamp = `${process.pid}.${Date.now()}`;
  const staged: { file: string; tmp: string; backup?: string }[] = [];
  const cleanup = () => {
    for (const s of staged) fs.rmSync(s.tmp, { force: true });
  };
  let current = ''; // the file being staged, for "cannot write '<file>'" (never the temp name)
  try {
    for (const [file, data] of files) {
      current = file;
      const dir = path.dirname(path.resolve(file));
      fs.mkdirSync(dir, { recursive: true });
      if (fs.existsSync(file) && !fs.statSync(file).isFile()) throw new Error(`'${file}' exists and is not a regular file`);
      const tmp = path.join(dir, `.${path.basename(file)}.${stamp}.tmp`);
      staged.push({ file, tmp });
      fs.writeFileSync(tmp, data);
    }
  } catch (e) {
    cleanup();
    throw (e as NodeJS.ErrnoException)?.code ? writeError(current, e) : e;
  }
  const done: { file: string; backup?: string }[] = [];
  try {
    for (const s of staged) {
      let backup: string | undefined;
      if (fs.existsSync(s.file)) {
        backup = `${s.tmp}.old`;
        try {
          fs.linkSync(s.file, backup);
        } catch {
          fs.copyFileSync(s.file, backup); // file systems without hard links
        }
      }
      done.push({ file: s.file, backup });
      fs.renameSync(s.tmp, s.file);
    }
  } catch (e) {
    for (const d of done.reverse()) {
      if (d.backup) {
        fs.renameSync(d.backup, d.file);
        // rename() between two links of one file (a target whose own rename failed) is a no-op that keeps both.
        fs.rmSync(d.backup, { force: true });
      } else fs.rmSync(d.file, { force: true });
    }
    cleanup();
    throw (e as NodeJS.ErrnoException)?.code && staged.length ? writeError(staged[Math.min(done.length, staged.length) - 1]?.file ?? current, e) : e;
  }
  for (const d of done) if (d.backup) fs.rmSync(d.backup, { force: true });
}
