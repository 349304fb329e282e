import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Write via a temp file in the same directory, fsync, rename, fsync the directory: never a torn file. */
export async function writeFileAtomic(
  path: string,
  content: string | Buffer,
  mode = 0o644,
  /** Called with the temp file written and synced, just before the rename (tests use it to crash there). */
  beforeRename?: (tmp: string) => Promise<void>,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(content);
    await fh.chmod(mode);
    await fh.sync();
  } catch (error) {
    await fh.close();
    await unlink(tmp).catch(() => {});
    throw error;
  }
  await fh.close();
  try {
    if (beforeRename) await beforeRename(tmp);
    await rename(tmp, path);
  } catch (error) {
    await unlink(tmp).catch(() => {});
    throw error;
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
