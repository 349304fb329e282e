import { open, unlink, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import type { BeContext } from './context.js';
import { BeError } from '../sys/errors.js';
import { checkPoolName } from '../zfs/names.js';
import { shQuote } from '../sys/shell.js';

/** Remembers the file a pool was made on, so `be pool destroy` removes it too. */
const BACKING_FILE = 'be:file';

const SIZE = /^(\d+(?:\.\d+)?)([KMGT]?)$/i;

export function parseSize(text: string): number {
  const m = SIZE.exec(text.trim());
  if (!m) throw new BeError(`invalid size '${text}': expected a number with K, M, G or T`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G' | 'T'];
  const bytes = Math.floor(Number(m[1]) * mult);
  if (bytes < 64 * 1024 ** 2) throw new BeError(`invalid size '${text}': a pool needs at least 64M`);
  return bytes;
}

/**
 * A pool on a sparse file, imported with an altroot so nothing in it can mount over the host's
 * own directories. The pool's own dataset is not mounted (mountpoint=none).
 */
export async function createFilePool(ctx: BeContext, pool: string, file: string, size = '4G', altroot?: string): Promise<{ altroot: string }> {
  checkPoolName(pool);
  if (!isAbsolute(file)) throw new BeError(`invalid file '${file}': give an absolute path`);
  const bytes = parseSize(size);
  const root = altroot ?? `/tmp/be.${pool}`;
  if (!isAbsolute(root)) throw new BeError(`invalid altroot '${root}': give an absolute path`);
  if (await ctx.zfs.poolProps(pool, ['name'])) throw new BeError(`pool '${pool}' already exists`);
  if (await stat(file).then(() => true, () => false)) throw new BeError(`file '${file}' already exists`);
  await ctx.runner.transaction(async () => {
    await ctx.runner.act(
      `truncate -s ${bytes} ${shQuote(file)}`,
      async () => {
        const fh = await open(file, 'wx', 0o600);
        try {
          await fh.truncate(bytes);
        } finally {
          await fh.close();
        }
      },
      () => unlink(file),
    );
    await ctx.runner.change(['zpool', 'create', '-m', 'none', '-R', root, pool, file], { undo: ['zpool', 'destroy', pool] });
    await ctx.zfs.set(pool, BACKING_FILE, file);
  });
  return { altroot: root };
}

/** Destroy a pool; when it lives on one file that `be pool create` made, remove the file too. */
export async function destroyPool(ctx: BeContext, pool: string): Promise<void> {
  checkPoolName(pool);
  if (!(await ctx.zfs.poolProps(pool, ['name']))) throw new BeError(`pool '${pool}' does not exist`);
  const file = (await ctx.zfs.get([pool], [BACKING_FILE])).get(pool)?.[BACKING_FILE];
  const removeFile = file?.source === 'local' ? file.value : undefined;
  await ctx.runner.change(['zpool', 'destroy', '-f', pool]);
  if (removeFile) await ctx.runner.act(`rm -f ${shQuote(removeFile)}`, () => unlink(removeFile).catch(() => {}));
}
