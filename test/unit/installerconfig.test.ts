import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  flagsToConfig,
  loadInstallerConfig,
  mergeConfig,
  postInstallPart,
  preamblePart,
  renderInstallerConfig,
  validateInstallerConfig,
  type RawConfig,
} from '../../src/install/installerconfig.js';
import { checkPoolName } from '../../src/zfs/names.js';

const DIR = fileURLToPath(new URL('./installerconfig/', import.meta.url));
const UPDATE = process.env.UPDATE_GOLDEN === '1';

async function shCheck(text: string): Promise<void> {
  const r = await execa('sh', ['-n'], { input: text, reject: false });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
}

/** The variables the preamble sets, read by sourcing it in sh as bsdinstall does. */
async function sourced(preamble: string, names: string[]): Promise<Record<string, string>> {
  const script = `${preamble}\n${names.map((n) => `printf '%s\\0' "$${n}"`).join('\n')}\n`;
  const r = await execa('sh', ['-c', script]);
  const values = r.stdout.split('\0');
  return Object.fromEntries(names.map((n, i) => [n, values[i]]));
}

describe('be installerconfig: golden scripts', () => {
  for (const name of ['zfs-mirror.yaml', 'zfs-raidz2.json', 'zfs-uefi-shallow.yaml', 'ufs.yaml']) {
    it(`renders ${name} as the golden script, and sh -n accepts it and its post-install part`, async () => {
      const text = renderInstallerConfig(await loadInstallerConfig(join(DIR, name), {}));
      const golden = join(DIR, name.replace(/\.(yaml|json)$/, '.sh'));
      if (UPDATE || !existsSync(golden)) writeFileSync(golden, text);
      expect(text).toBe(readFileSync(golden, 'utf8'));
      await shCheck(text);
      const post = postInstallPart(text);
      expect(post.startsWith('#!/bin/sh\n')).toBe(true);
      await shCheck(post);
      // Exactly one #! line: bsdinstall splits the file there (split -p '^#!.*').
      expect(text.split('\n').filter((l) => l.startsWith('#!'))).toEqual(['#!/bin/sh']);
    });
  }

  it('sets the zfsboot variables bsdinstall reads, with the nested be layout under the BE', async () => {
    const text = renderInstallerConfig(await loadInstallerConfig(join(DIR, 'zfs-mirror.yaml'), {}));
    const v = await sourced(preamblePart(text), ['ZFSBOOT_DISKS', 'ZFSBOOT_VDEV_TYPE', 'ZFSBOOT_POOL_NAME', 'ZFSBOOT_GELI_ENCRYPTION', 'ZFSBOOT_DATASETS', 'DISTRIBUTIONS', 'nonInteractive']);
    expect(v.ZFSBOOT_DISKS).toBe('ada0 ada1');
    expect(v.ZFSBOOT_VDEV_TYPE).toBe('mirror');
    expect(v.ZFSBOOT_GELI_ENCRYPTION).toBe('');
    expect(v.DISTRIBUTIONS).toBe('kernel.txz base.txz lib32.txz');
    expect(v.nonInteractive).toBe('YES');
    const datasets = v.ZFSBOOT_DATASETS.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[0]);
    expect(datasets).toContainEqual(['/ROOT', 'mountpoint=none']);
    expect(datasets).toContainEqual(['/ROOT/default', 'mountpoint=/']);
    expect(datasets).toContainEqual(['/ROOT/default/usr/home']);
    expect(datasets).toContainEqual(['/ROOT/default/var/log', 'exec=off,setuid=off']);
    expect(postInstallPart(text)).toContain('zfs set canmount=off zroot/ROOT/default/usr\n');
  });

  // zfsboot (usr.sbin/bsdinstall/scripts/zfsboot) makes only the BE itself canmount=noauto in
  // older versions, every dataset under it in newer ones; the post-install part (run while the pool is still
  // imported, scripts/script) has to leave each dataset of the BE as the layout says.
  for (const name of ['zfs-mirror.yaml', 'zfs-raidz2.json', 'zfs-uefi-shallow.yaml']) {
    it(`${name}: the post-install part sets canmount on every dataset of the boot environment`, async () => {
      const text = renderInstallerConfig(await loadInstallerConfig(join(DIR, name), {}));
      const v = await sourced(preamblePart(text), ['ZFSBOOT_DATASETS', 'ZFSBOOT_POOL_NAME', 'ZFSBOOT_BEROOT_NAME', 'ZFSBOOT_BOOTFS_NAME']);
      const be = `/${v.ZFSBOOT_BEROOT_NAME}/${v.ZFSBOOT_BOOTFS_NAME}`;
      const lines = v.ZFSBOOT_DATASETS.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[0] === be || f[0]?.startsWith(`${be}/`));
      expect(lines.length).toBeGreaterThan(0);
      const want = lines.map(([path, options = '']) => `zfs set canmount=${/(^|,)canmount=off(,|$)/.test(options) ? 'off' : 'noauto'} ${v.ZFSBOOT_POOL_NAME}${path}`);
      const got = postInstallPart(text).split('\n').filter((l) => l.startsWith('zfs '));
      expect(got.sort()).toEqual(want.sort());
    });
  }

  it("geli: true (or --geli) is refused with one line: zfsboot reads the GELI passphrase from the console only", async () => {
    const line = "installerconfig: 'zfs.geli: true' (--geli) cannot be scripted: bsdinstall's zfsboot asks for the GELI passphrase on the console and reads it from no variable or file";
    await expect(loadInstallerConfig(join(DIR, 'zfs-geli.yaml'), {})).rejects.toThrow(line);
    await expect(loadInstallerConfig(undefined, flagsToConfig({ disk: ['ada0'], geli: true }))).rejects.toThrow(line);
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { be } = await import('../helpers/cli.js');
    const dir = await mkdtemp(join(tmpdir(), 'bcfg-geli-'));
    try {
      const out = join(dir, 'installerconfig');
      for (const args of [['--disk', 'ada0', '--geli'], ['-c', join(DIR, 'zfs-geli.yaml')]]) {
        const r = await be(['installerconfig', ...args, '-o', out]);
        expect(r.exitCode).toBe(1);
        expect(r.stderr).toBe(`be: ${line}\n`);
        expect(r.stdout).toBe('');
        expect(existsSync(out)).toBe(false);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('pool names follow one rule, the one src/zfs/names.ts has from zfs_namecheck.c and libzfs', () => {
    const names = ['zroot', 'tank', 'cache', 'special1', 'dedup', 'a.b:c-d_e', 'mirror', 'mirror1', 'raidz2x', 'draid', 'spare0', 'log', 'c0t0', '1pool', 'z/root', 'z@x', 'a b'];
    for (const pool of names) {
      let namesOk = true;
      try {
        checkPoolName(pool);
      } catch {
        namesOk = false;
      }
      let ok = true;
      try {
        validateInstallerConfig({ disks: ['ada0'], zfs: { pool } });
      } catch (error) {
        ok = false;
        expect((error as Error).message).toMatch(new RegExp(`^installerconfig: bad pool name '${pool.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}' \\(.+\\)$`));
      }
      expect([pool, ok]).toEqual([pool, namesOk]);
    }
  });

  it('UFS writes PARTITIONS in scriptedpart syntax', async () => {
    const text = renderInstallerConfig(await loadInstallerConfig(join(DIR, 'ufs.yaml'), {}));
    const v = await sourced(preamblePart(text), ['PARTITIONS', 'ZFSBOOT_DISKS']);
    expect(v.PARTITIONS).toBe('vtbd0 GPT { 512k freebsd-boot, 2g freebsd-swap, 10g freebsd-ufs /, auto freebsd-ufs /var }');
    expect(v.ZFSBOOT_DISKS).toBe('');
  });

  it('flags override the file; rc entries and packages add up', async () => {
    const flags = flagsToConfig({ disk: ['ada3'], vdev: 'stripe', rc: ['moused_enable=NO'], package: ['vim'], hostname: 'other' });
    const cfg = await loadInstallerConfig(join(DIR, 'zfs-mirror.yaml'), flags);
    expect(cfg.disks).toEqual(['ada3']);
    expect(cfg.zfs.vdev).toBe('stripe');
    expect(cfg.zfs.swap).toBe('4g');
    expect(cfg.hostname).toBe('other');
    expect(cfg.rc.map((e) => e.key)).toEqual(['sshd_enable', 'ifconfig_vtnet0', 'moused_enable']);
    expect(cfg.packages).toEqual(['git', 'tmux', 'vim']);
  });
});

describe('be installerconfig: bad values are one-line errors naming the value', () => {
  const base: RawConfig = { disks: ['ada0'] };
  const cases: Array<[string, RawConfig, string]> = [
    ['disk name', { disks: ['/dev/ada0'] }, "installerconfig: bad disk device name '/dev/ada0' (a device such as ada0, da1, nvd0, vtbd0)"],
    ['no disks', { disks: [] }, 'installerconfig: no disks given (disks: [ada0] or --disk ada0)'],
    ['vdev type', { zfs: { vdev: 'raid5' } }, "installerconfig: bad vdev type 'raid5' (stripe, mirror, raid10, raidz1, raidz2, raidz3)"],
    ['mirror of one', { zfs: { vdev: 'mirror' } }, "installerconfig: bad disk count for mirror '1' (mirror needs at least 2 disks)"],
    ['raidz2 of three', { disks: ['da0', 'da1', 'da2'], zfs: { vdev: 'raidz2' } }, "installerconfig: bad disk count for raidz2 '3' (raidz2 needs at least 4 disks)"],
    ['odd raid10', { disks: ['da0', 'da1', 'da2', 'da3', 'da4'], zfs: { vdev: 'raid10' } }, "installerconfig: bad disk count for raid10 '5' (raid10 needs an even number of disks)"],
    ['swap size', { zfs: { swap: '2 gigs' } }, "installerconfig: bad swap size '2 gigs' (a number with an optional k/m/g/t suffix, e.g. 2g)"],
    ['pool name', { zfs: { pool: 'mirror1' } }, "installerconfig: bad pool name 'mirror1' ('mirror1' is a reserved pool name)"],
    ['pool name with slash', { zfs: { pool: 'z/root' } }, "installerconfig: bad pool name 'z/root' (character \"/\" is not allowed)"],
    ['bootfs name', { zfs: { bootfs: 'a/b' } }, "installerconfig: bad boot environment name 'a/b'"],
    ['scheme', { zfs: { scheme: 'gpt' } }, "installerconfig: bad partition scheme 'gpt' (GPT, MBR, GPT + Active, GPT + Lenovo Fix)"],
    ['MBR with UEFI', { zfs: { scheme: 'MBR', bootType: 'UEFI' } }, "installerconfig: bad boot type 'UEFI' (MBR boots BIOS only)"],
    ['layout', { zfs: { layout: 'nested' } }, "installerconfig: unknown layout 'nested' (known: flat, freebsd, shallow)"],
    ['hostname', { hostname: 'lab_1' }, "installerconfig: bad hostname 'lab_1'"],
    ['rc key', { rc: { 'sshd-enable': 'YES' } }, "installerconfig: bad rc.conf variable 'sshd-enable'"],
    ['ssh key', { users: [{ name: 'bob', sshKeys: ['not a key'] }] }, "installerconfig: bad ssh key 'not a key' (type base64 [comment] on one line)"],
    ['user name', { users: [{ name: 'Bob' }] }, "installerconfig: bad user name 'Bob'"],
    ['password hash', { rootPasswordHash: 'secret' }, "installerconfig: bad root password hash 'secret' (a crypt(3) hash such as $6$salt$…, or *)"],
    ['package', { packages: ['git; rm -rf /'] }, "installerconfig: bad package name 'git; rm -rf /'"],
    ['distsite', { distsite: 'file:///x' }, "installerconfig: bad BSDINSTALL_DISTSITE 'file:///x' (an http(s) or ftp URL)"],
    ['no base', { distributions: ['kernel'] }, "installerconfig: bad distribution list 'kernel' (base is required)"],
    ['UFS without /', { fs: 'ufs', ufs: { partitions: [{ size: 'auto', type: 'freebsd-ufs', mount: '/usr' }] } }, "installerconfig: UFS partitions have no '/' (add { size: auto, type: freebsd-ufs, mount: / })"],
    ['UFS size', { fs: 'ufs', ufs: { partitions: [{ size: 'big', type: 'freebsd-ufs', mount: '/' }] } }, "installerconfig: bad partition size 'big' (a number with an optional k/m/g/t suffix, e.g. 2g)"],
    ['UFS type', { fs: 'ufs', ufs: { partitions: [{ size: 'auto', type: 'ext4', mount: '/' }] } }, "installerconfig: bad partition type 'ext4' (freebsd-ufs, freebsd-swap, freebsd-boot, freebsd-zfs, efi, freebsd, mbr, apple-boot)"],
    ['unknown key', { disk: ['ada0'] }, "installerconfig: unknown setting 'disk' (known: fs, disks, zfs, ufs, distributions, distsite, distdir, hostname, rc, users, packages, rootPasswordHash)"],
  ];
  for (const [what, raw, message] of cases) {
    it(what, () => {
      expect(() => validateInstallerConfig(mergeConfig(base, raw))).toThrow(message);
      try {
        validateInstallerConfig(mergeConfig(base, raw));
      } catch (error) {
        expect((error as Error).message).toBe(message);
        expect((error as Error).message).not.toContain('\n');
      }
    });
  }
});

describe('be installerconfig -o FILE', () => {
  it('writes the file (mode 644), and with -n prints the write as a script instead', async () => {
    const { mkdtemp, rm, stat } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { BE_BIN } = await import('../helpers/cli.js');
    const dir = await mkdtemp(join(tmpdir(), 'be-ic-'));
    try {
      const out = join(dir, 'installerconfig');
      const dry = await execa(BE_BIN, ['-n', 'installerconfig', '--disk', 'ada0', '-o', out]);
      expect(existsSync(out)).toBe(false);
      expect(dry.stdout).toMatch(new RegExp(`^#!/bin/sh\\nset -e\\ncat > ${out.replace(/[/.-]/g, '\\$&')} <<'BE_EOF'\\n# bsdinstall\\(8\\) script`));
      await execa('sh', ['-n'], { input: dry.stdout });
      // the printed script writes exactly what the real run writes
      await execa('sh', [], { input: dry.stdout });
      const fromScript = readFileSync(out, 'utf8');
      await rm(out);
      await execa(BE_BIN, ['installerconfig', '--disk', 'ada0', '-o', out]);
      expect(readFileSync(out, 'utf8')).toBe(fromScript);
      expect((await stat(out)).mode & 0o777).toBe(0o644);
      expect(fromScript).toContain('export ZFSBOOT_DISKS=ada0\n');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('be installerconfig --templates DIR', () => {
  async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'be-ic-templates-'));
    try {
      await body(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it("renders DIR/installerconfig.hbs instead of the packaged one, with the same data and helpers", async () => {
    const { be } = await import('../helpers/cli.js');
    await withDir(async (dir) => {
      writeFileSync(
        join(dir, 'installerconfig.hbs'),
        '# site script\nexport ZFSBOOT_DISKS={{sh disks}}\nDISTRIBUTIONS={{dq distributions}}\n#!/bin/sh\necho {{sh cfg.hostname}} > /etc/site\n',
      );
      const r = await be(['installerconfig', '--disk', 'ada0', '--disk', 'ada1', '--vdev', 'mirror', '--hostname', 'lab1', '--templates', dir]);
      expect(r.stderr).toBe('');
      expect(r.exitCode).toBe(0);
      expect(r.stdout).toBe('# site script\nexport ZFSBOOT_DISKS=\'ada0 ada1\'\nDISTRIBUTIONS="kernel.txz base.txz"\n#!/bin/sh\necho lab1 > /etc/site\n');
      await shCheck(r.stdout);
    });
  });

  it('a DIR without installerconfig.hbs falls back to the packaged template', async () => {
    const { be } = await import('../helpers/cli.js');
    await withDir(async (dir) => {
      writeFileSync(join(dir, 'rc.conf.hbs'), 'not used here\n');
      const own = await be(['installerconfig', '--disk', 'ada0', '--templates', dir]);
      const packaged = await be(['installerconfig', '--disk', 'ada0']);
      expect(own.exitCode).toBe(0);
      expect(own.stdout).toBe(packaged.stdout);
      expect(own.stdout).toContain('export ZFSBOOT_DISKS=ada0\n');
    });
  });

  it('a missing DIR, a file as DIR, or a template with a syntax error: one line naming it, and -o writes nothing', async () => {
    const { be } = await import('../helpers/cli.js');
    await withDir(async (dir) => {
      const out = join(dir, 'installerconfig');
      writeFileSync(out, 'the script from before\n');
      const run = (templates: string) => be(['installerconfig', '--disk', 'ada0', '--templates', templates, '-o', out]);

      const missing = await run(join(dir, 'nowhere'));
      expect(missing.exitCode).toBe(1);
      expect(missing.stderr).toBe(`be: template directory '${join(dir, 'nowhere')}' does not exist\n`);

      const own = join(dir, 'own');
      (await import('node:fs')).mkdirSync(own);
      const template = join(own, 'installerconfig.hbs');
      writeFileSync(template, '# site script\nexport ZFSBOOT_DISKS={{sh disks}\n#!/bin/sh\n');
      const notDir = await run(template);
      expect(notDir.exitCode).toBe(1);
      expect(notDir.stderr).toBe(`be: template directory '${template}' is not a directory\n`);

      const broken = await run(own);
      expect(broken.exitCode).toBe(1);
      expect(broken.stderr).toMatch(new RegExp(`^be: template ${template.replace(/[.]/g, '\\.')}: Parse error on line 2: Expecting .*, got '[A-Z_]+'\\n$`));

      writeFileSync(template, '{{#if zfs}}\nexport ZFSBOOT_DISKS={{sh disks}}\n{{/each}}\n');
      const unbalanced = await run(own);
      expect(unbalanced.stderr).toBe(`be: template ${template}: if doesn't match each - 1:3\n`);

      writeFileSync(template, 'export ZFSBOOT_DISKS={{shell disks}}\n');
      const helper = await run(own);
      expect(helper.stderr).toBe(`be: template ${template}: Missing helper: "shell"\n`);

      for (const r of [missing, notDir, broken, unbalanced, helper]) expect(r.stdout).toBe('');
      expect(readFileSync(out, 'utf8')).toBe('the script from before\n');
    });
  });
});
