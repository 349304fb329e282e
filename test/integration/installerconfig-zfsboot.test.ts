import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { makeTestPool } from '../helpers/zfs.js';
import { postInstallPart, preamblePart, renderInstallerConfig, validateInstallerConfig } from '../../src/install/installerconfig.js';

/**
 * The datasets a `be installerconfig` script leaves behind, on a real pool (zfs-fuse): the
 * preamble is sourced by sh, the datasets are made as usr.sbin/bsdinstall/scripts/zfsboot's
 * zfs_create_boot makes them (`zfs create -o …` per ZFSBOOT_DATASETS line, the pool's
 * mountpoint, then canmount=noauto: on the BE alone in older versions, on every line under the BE in newer ones),
 * and the post-install part's zfs commands run as scripts/script runs that part: with sh, while
 * the pool is still imported.
 */

async function sourced(preamble: string, names: string[]): Promise<Record<string, string>> {
  const script = `${preamble}\n${names.map((n) => `printf '%s\\0' "$${n}"`).join('\n')}\n`;
  const values = (await execa('sh', ['-c', script])).stdout.split('\0');
  return Object.fromEntries(names.map((n, i) => [n, values[i]]));
}

type Era = 'the BE only (older zfsboot)' | 'every dataset under the BE (newer zfsboot)';

async function installLike(era: Era, layout: string) {
  const tp = await makeTestPool('256M');
  try {
    const text = renderInstallerConfig(validateInstallerConfig({ disks: ['ada0'], zfs: { pool: tp.pool, layout } }));
    const v = await sourced(preamblePart(text), ['ZFSBOOT_POOL_NAME', 'ZFSBOOT_BEROOT_NAME', 'ZFSBOOT_BOOTFS_NAME', 'ZFSBOOT_DATASETS']);
    const pool = v.ZFSBOOT_POOL_NAME;
    expect(pool).toBe(tp.pool);
    const be = `/${v.ZFSBOOT_BEROOT_NAME}/${v.ZFSBOOT_BOOTFS_NAME}`;
    const lines: Array<{ dataset: string; options: string[] }> = [];
    for (const raw of v.ZFSBOOT_DATASETS.split('\n')) {
      const [dataset, ...rest] = raw.trim().split(/\s+/);
      if (!dataset || dataset.startsWith('#')) continue;
      const options = rest.join(' ').replace(/#.*/, '').split(/[ ,]+/).filter(Boolean);
      lines.push({ dataset, options });
      await execa('zfs', ['create', ...options.flatMap((o) => ['-o', o]), `${pool}${dataset}`]);
    }
    await execa('zfs', ['set', `mountpoint=/${pool}`, pool]);
    const underBe = lines.filter((l) => l.dataset === be || l.dataset.startsWith(`${be}/`));
    for (const l of era === 'the BE only (older zfsboot)' ? underBe.filter((x) => x.dataset === be) : underBe) {
      await execa('zfs', ['set', 'canmount=noauto', `${pool}${l.dataset}`]);
    }
    const mountedBefore = await mounted(pool, underBe.map((l) => l.dataset));

    const zfsPart = postInstallPart(text).split('\n').filter((l) => l.startsWith('zfs ')).join('\n');
    expect(zfsPart).not.toBe('');
    await execa('sh', ['-e', '-c', zfsPart]);

    const canmount = Object.fromEntries(
      (await execa('zfs', ['get', '-H', '-o', 'name,value', '-r', 'canmount', `${pool}${be}`])).stdout.split('\n').map((l) => l.split('\t')),
    );
    const want = Object.fromEntries(underBe.map((l) => [`${pool}${l.dataset}`, l.options.includes('canmount=off') ? 'off' : 'noauto']));
    return { canmount, want, mountedBefore, mountedAfter: await mounted(pool, underBe.map((l) => l.dataset)) };
  } finally {
    await tp.destroy();
  }
}

async function mounted(pool: string, datasets: string[]): Promise<string[]> {
  const out = await execa('zfs', ['get', '-H', '-o', 'name,value', 'mounted', ...datasets.map((d) => `${pool}${d}`)]);
  return out.stdout.split('\n').filter((l) => l.endsWith('\tyes')).map((l) => l.split('\t')[0]);
}

describe('be installerconfig on a pool laid out by zfsboot', () => {
  for (const era of ['the BE only (older zfsboot)', 'every dataset under the BE (newer zfsboot)'] as Era[]) {
    it(`zfsboot sets canmount=noauto on ${era}: afterwards every dataset of the BE is noauto, or off where the layout says so`, async () => {
      const r = await installLike(era, 'freebsd');
      expect(Object.keys(r.want).length).toBe(12); // the BE and its 11 children
      expect(r.canmount).toEqual(r.want);
      // What the sets were extracted into stays mounted until bsdinstall exports the pool.
      expect(r.mountedBefore.some((d) => d.endsWith('/ROOT/default/var/log'))).toBe(true);
      expect(r.mountedAfter).toEqual(r.mountedBefore);
    });
  }

  it('the shallow layout: the BE alone, noauto', async () => {
    const r = await installLike('the BE only (older zfsboot)', 'shallow');
    expect(r.canmount).toEqual(r.want);
    expect(Object.values(r.canmount)).toEqual(['noauto']);
  });
});
