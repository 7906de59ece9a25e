/** File helpers shared by every writer: outputs appear whole or not at all. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Writes `data` to `file` through a temp file in the same directory and a rename (atomic on POSIX). */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const dir = path.dirname(path.resolve(file));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** Async variant of writeFileAtomic for large buffers. */
export async function writeFileAtomicAsync(file: string, data: string | Uint8Array): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  await fs.promises.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await fs.promises.writeFile(tmp, data);
    await fs.promises.rename(tmp, file);
  } catch (e) {
    await fs.promises.rm(tmp, { force: true });
    throw e;
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
