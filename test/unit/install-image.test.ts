import { describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bsdinstallScriptArgv,
  freeMdUnit,
  mdconfigAttachArgv,
  mdconfigDetachArgv,
  mdconfigListArgv,
  truncateArgv,
  vmrunArgv,
  zpoolExportArgv,
} from '../../src/install/image.js';
import { be } from '../helpers/cli.js';

// Contracts from the manual pages:
// mdconfig(8): mdconfig -a -t type [-n] [-o [no]option] ... [-f file] [-s size] [-S sectorsize] [-u unit]
//              mdconfig -d -u unit [-o [no]force]      mdconfig -l [-n] [-v] [-f file] [-u unit]
// bsdinstall(8): bsdinstall script script
// vmrun.sh: vmrun.sh [-ahi] [-c CPUs] [-C console] [-d disk file] ... [-m memsize] ... <vmname>
describe('be image: argv of the FreeBSD programs it runs', () => {
  it('attaches the image as a vnode md disk with a chosen unit', () => {
    expect(mdconfigAttachArgv('/vm/a.img', 3)).toEqual(['mdconfig', '-a', '-t', 'vnode', '-f', '/vm/a.img', '-u', '3']);
  });
  it('detaches by unit and lists units', () => {
    expect(mdconfigDetachArgv(3)).toEqual(['mdconfig', '-d', '-u', '3']);
    expect(mdconfigListArgv()).toEqual(['mdconfig', '-l']);
  });
  it('picks the lowest md unit not in use', () => {
    expect(freeMdUnit('')).toBe(0);
    expect(freeMdUnit('md0 md1 md3\n')).toBe(2);
  });
  it('runs bsdinstall script, exports the pool, truncates the image, and prints vmrun.sh', () => {
    expect(bsdinstallScriptArgv('/tmp/x.cfg')).toEqual(['bsdinstall', 'script', '/tmp/x.cfg']);
    expect(zpoolExportArgv('zvm1')).toEqual(['zpool', 'export', 'zvm1']);
    expect(truncateArgv('10G', '/vm/a.img')).toEqual(['truncate', '-s', '10G', '/vm/a.img']);
    expect(vmrunArgv('/vm/a.img', 'a', '2G')).toEqual(['sh', '/usr/share/examples/bhyve/vmrun.sh', '-m', '2G', '-d', '/vm/a.img', 'a']);
  });
});

describe('be image on this (non-FreeBSD) host', () => {
  it('prints the plan with -n and makes nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'be-image-test.'));
    try {
      const img = join(dir, 'vm1.img');
      const r = await be(['image', '-n', '--size', '10G', img]);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      const lines = r.stdout.split('\n');
      expect(lines).toContain(`truncate -s 10G ${img}`);
      expect(lines).toContain(`mdconfig -a -t vnode -f ${img} -u 0`);
      expect(lines.some((l) => /^bsdinstall script \/\S+\/be-image\.[0-9a-f]{8}\.cfg$/.test(l))).toBe(true);
      expect(lines).toContain('zpool export zvm1');
      expect(lines).toContain('mdconfig -d -u 0');
      expect(r.stdout).toContain("export ZFSBOOT_DISKS=md0\n");
      expect(lines[lines.length - 2]).toBe(`sh /usr/share/examples/bhyve/vmrun.sh -m 2G -d ${img} vm1`);
      expect(existsSync(img)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('says in one line that it needs FreeBSD without -n', async () => {
    const r = await be(['image', join(tmpdir(), 'never.img')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('be: be image needs FreeBSD (mdconfig, bsdinstall); use -n to print the plan\n');
  });
  it('refuses a bad size', async () => {
    const r = await be(['image', '-n', '--size', 'ten', join(tmpdir(), 'never.img')]);
    expect(r.stderr).toBe("be: bad image size 'ten' (e.g. 10G)\n");
  });
});
