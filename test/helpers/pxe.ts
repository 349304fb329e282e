/**
 * `be pxe serve` / `be sharepxe` as a process inside a network namespace, with its output lines.
 */
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { BE_BIN } from './cli.js';
import { nsRun, parseUdhcpcLog, udhcpcScript } from './dhcp.js';
import type { Lan } from './netns.js';
import { watch, type Watched } from './proc.js';

export interface PxeProcess extends Watched {
  pid(): Promise<number>;
}

/**
 * Run `be ARGS` in network namespace NS (none when NS is undefined). `ip netns exec` also gives the
 * process a mount namespace of its own, where mounts zfs-fuse makes later do not show up (when /
 * is not a shared mount); `netOnly` enters the network namespace alone, with nsenter.
 */
export function startBe(ns: string | undefined, args: string[], opts: { netOnly?: boolean } = {}): PxeProcess {
  const prefix = !ns ? [] : opts.netOnly ? ['nsenter', `--net=/run/netns/${ns}`] : ['ip', 'netns', 'exec', ns];
  const w = watch([...prefix, process.execPath, BE_BIN, ...args], { name: 'be' });
  // `ip netns exec` and nsenter exec the command, so the child's pid is node's pid
  return { ...w, pid: async () => w.proc.pid! };
}

/** One DHCP exchange from the LAN's client namespace with busybox udhcpc posing as a PXE client of architecture ARCH (option 93, hex); br0 is given the leased address. Returns udhcpc's variables. */
export async function pxeClient(lan: Lan, dir: string, mac: string, arch = '0000'): Promise<Record<string, string>> {
  const br0 = (args: string[]) => execa('ip', ['-n', lan.client, ...args]);
  await br0(['addr', 'flush', 'dev', 'br0']);
  await br0(['link', 'set', 'br0', 'address', mac]);
  const { script, log } = await udhcpcScript(dir);
  await nsRun(lan.client, [
    'busybox', 'udhcpc', '-q', '-n', '-f', '-i', 'br0', '-s', script, '-t', '5', '-T', '1',
    '-V', `PXEClient:Arch:${arch.slice(-5).padStart(5, '0')}:UNDI:002001`, '-x', `0x5d:${arch}`,
    '-O', 'rootpath', '-O', 'tftp', '-O', 'bootfile',
  ]);
  const bound = parseUdhcpcLog(await readFile(log, 'utf8')).find((e) => e.event === 'bound');
  if (!bound) throw new Error(`udhcpc got no lease: ${await readFile(log, 'utf8')}`);
  await br0(['addr', 'add', `${bound.env.ip}/24`, 'dev', 'br0']);
  return bound.env;
}

/** tftp-hpa `get REMOTE` from the LAN's client namespace; the file's bytes. */
export async function tftpGet(lan: Lan, dir: string, remote: string): Promise<Buffer> {
  const dest = join(dir, `got-${randomBytes(4).toString('hex')}`);
  const r = await nsRun(lan.client, ['tftp', lan.serverIps[0], '-m', 'octet', '-c', 'get', remote, dest], { reject: false });
  const data = await readFile(dest).catch(() => undefined);
  await rm(dest, { force: true });
  // tftp-hpa leaves an empty file behind on an error packet, and may exit 0
  if (!data || /Error code|Transfer timed out/.test(`${r.stdout}${r.stderr}`)) throw new Error(`tftp get ${remote} failed: ${r.stdout} ${r.stderr}`);
  return data;
}
