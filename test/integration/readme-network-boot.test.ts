/**
 * The README's network boot section runs as shown: its lab commands, in a network namespace
 * where 192.168.2.1/24 exists (on a veth pair, nowhere else), and its JSON config.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { BE_BIN, beOk } from '../helpers/cli.js';
import { ensureZfs } from '../helpers/zfs.js';
import { startBe } from '../helpers/pxe.js';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
const start = readme.indexOf('<!-- section: network boot -->');
const section = readme.slice(start, readme.indexOf('<!-- end section: network boot -->'));

function block(lang: string): string {
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(section);
  if (!m) throw new Error(`no ${lang} block in the network boot section`);
  return m[1];
}

/** The `be …` lines of the sh block, comments dropped, as argv. */
function commands(): string[][] {
  return block('sh').split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l.startsWith('be ')).map((l) => l.split(/\s+/).slice(1));
}

describe('README network boot', () => {
  const ns = `bereadme-${randomBytes(3).toString('hex')}`;
  // the commands as shown keep leases in the default place: remove what they created
  const created = ['/var/lib/be', '/var/lib/be/pxe'].find((d) => !existsSync(d));
  let pool = '';
  let imageFile = '';
  let dir = '';

  afterAll(async () => {
    if (pool) {
      // zfs-fuse answers "busy" for a while after the servers' last unmount: the pool must not
      // outlive its file
      for (let tries = 1; tries <= 12; tries++) {
        await execa(BE_BIN, ['pool', 'destroy', pool], { reject: false });
        if ((await execa('zpool', ['list', '-H', pool], { reject: false })).exitCode !== 0) break;
        await new Promise((r) => setTimeout(r, 250 * tries));
      }
      await rm(imageFile, { force: true });
    }
    await execa('ip', ['netns', 'del', ns], { reject: false });
    if (created) await rm(created, { recursive: true, force: true });
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('the lab commands and the config file run as shown', async () => {
    await ensureZfs();
    const lines = commands();
    expect(lines.map((l) => l.slice(0, 2).join(' '))).toEqual(['pool create', 'create -l', 'sharepxe pxelab/ROOT/head', 'pxe serve', 'wol 52:54:00:12:34:56']);
    pool = lines[0].at(-1)!;
    imageFile = lines[0][lines[0].indexOf('--file') + 1];
    // A run killed half way leaves the README's pool or its file behind: start from nothing.
    await execa(BE_BIN, ['pool', 'destroy', pool], { reject: false });
    await rm(imageFile, { force: true });
    await execa('ip', ['netns', 'add', ns]);
    await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    await execa('ip', ['-n', ns, 'link', 'add', 'lab0', 'type', 'veth', 'peer', 'name', 'lab1']);
    await execa('ip', ['-n', ns, 'addr', 'add', '192.168.2.1/24', 'dev', 'lab0']);
    await execa('ip', ['-n', ns, 'link', 'set', 'lab0', 'up']);
    await execa('ip', ['-n', ns, 'link', 'set', 'lab1', 'up']);

    for (const args of lines) {
      if (args[0] === 'sharepxe' || args[0] === 'pxe') {
        const server = startBe(ns, args, { netOnly: true });
        await server.waitFor(/^running as nobody/);
        expect(await server.stop()).toBe(0);
      } else if (args[0] === 'wol') {
        const r = await execa('nsenter', [`--net=/run/netns/${ns}`, process.execPath, BE_BIN, ...args]);
        expect(r.stdout).toBe('sent magic packet for 52:54:00:12:34:56 to 192.168.2.255:9');
      } else {
        await beOk(args);
      }
      if (args[0] === 'create') {
        // what `be install` would leave in /boot
        const mnt = (await beOk(['mount', args.at(-1)!])).trim();
        await mkdir(join(mnt, 'boot'));
        await writeFile(join(mnt, 'boot', 'pxeboot'), 'pxeboot\n');
        await writeFile(join(mnt, 'boot', 'loader.efi'), 'loader.efi\n');
        await beOk(['umount', args.at(-1)!]);
      }
    }

    dir = await mkdtemp(join(tmpdir(), 'be-readme-pxe-'));
    await chmod(dir, 0o755);
    const config = join(dir, 'pxe.json');
    await writeFile(config, block('json'));
    const server = startBe(ns, ['pxe', 'serve', '--config', config, '--lease-file', join(dir, 'leases', 'leases')], { netOnly: true });
    await server.waitFor(/^running as nobody/);
    expect(server.lines).toContain('tftp serving /tmp/be.pxelab/ROOT/head/boot on 192.168.2.1:69');
    expect(await server.stop()).toBe(0);
  }, 120_000);
});
