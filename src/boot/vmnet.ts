/**
 * The private network of one QEMU guest on Linux: a network namespace of its own holding bridge
 * br0 (the server side, .1 of a /29 of its own) and tap0 (the guest's NIC) on it; rpcbind and
 * nfs-ganesha in a mount namespace of their own (a private /run, so each VM's rpcbind has its own
 * socket) exporting the one BE to the guest's address only; `be pxe serve` beside them (DHCP with
 * the root-path, TFTP from the BE's /boot). Nothing leaves the namespace. Everything is removed
 * afterwards; the namespace's name carries be's pid, so a killed run's leftovers are found and
 * removed at the next start (cleanupVmLeftovers).
 *
 * What the FreeBSD chain asks of the server, read from its sources:
 * - stand/libsa/bootp.c keeps DHCP option 17 as the root path, and stand/libsa/net.c
 *   (net_parse_rootpath) reads it as `ip:/path` (inet_addr of the part before ':'): the root
 *   path is given with the server's address, not a host name.
 * - stand/libsa/nfs.c (nfs_getrootfh) asks MOUNT version 3 (RPCPROG_MNT, RPCMNT_VER3) for the
 *   path's file handle, and reads files with NFSv3, over UDP (stand/libsa/rpc.c: rpc_call sends
 *   UDP datagrams, ports found through the portmapper): ganesha must listen on UDP for MOUNT and
 *   NFS and register them with rpcbind.
 * - sys/nfs/nfs_diskless.c (nfs_setup_diskless) mounts the root with the loader's handle over
 *   NFSv3 with sotype SOCK_STREAM, i.e. TCP to port 2049 (NFS_PORT), from a reserved port
 *   (NFSMNT_RESVPORT): ganesha must serve NFSv3 over TCP on 2049 too, and root must not be squashed.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
import { processAlive } from '../sys/lock.js';
import { shJoin, shQuote } from '../sys/shell.js';
import { ganeshaBlock } from '../share/ganesha.js';

/** Namespace names start with this (BE_VM_PREFIX overrides it: tests keep theirs apart). */
export function vmPrefix(): string {
  const p = process.env.BE_VM_PREFIX ?? 'bevm-';
  if (!/^[a-z][a-z0-9-]{0,15}$/.test(p)) throw new BeError(`invalid BE_VM_PREFIX '${p}'`);
  return p;
}

const NETNS_DIR = '/run/netns';
/** Where the mount namespaces of the VMs' NFS servers are kept (a file per VM). */
export const MNTNS_DIR = '/run/be-vm';

export interface VmAddresses {
  ns: string;
  /** The server's address on br0 (NFS, DHCP, TFTP). */
  host: string;
  /** The guest's (reserved for its MAC). */
  guest: string;
  prefix: number;
  /** Where the configs and logs of this VM's servers go. */
  dir: string;
  mnt: string;
}

let seq = 0;

/** A namespace name and a /29 of its own for the next VM of this process. */
export function nextVm(pid = process.pid, n = seq++): VmAddresses {
  const ns = `${vmPrefix()}${pid}-${n}`;
  const k = (pid * 97 + n) % (50 * 256 * 32);
  const base = `10.${200 + Math.floor(k / (256 * 32))}.${Math.floor(k / 32) % 256}`;
  const c = (k % 32) * 8;
  return { ns, host: `${base}.${c + 1}`, guest: `${base}.${c + 2}`, prefix: 29, dir: join(tmpdir(), 'be-vm', ns), mnt: join(MNTNS_DIR, `${ns}.mnt`) };
}

/** The ganesha.conf of one VM: NFSv3 over UDP and TCP, MOUNT v3, registered with rpcbind, no grace period; the BE exported to the guest alone, root not squashed. */
export function vmGaneshaConf(o: { path: string; guest: string; bind: string }): string {
  const core = [
    'NFS_CORE_PARAM {',
    '\tProtocols = 3;',
    '\tEnable_UDP = true;',
    '\tEnable_NLM = false;',
    '\tEnable_RQUOTA = false;',
    `\tBind_addr = ${o.bind};`,
    '\tNFS_Port = 2049;',
    '}',
    'NFSV4 {',
    '\tGraceless = true;',
    '}',
    '',
  ].join('\n');
  return core + ganeshaBlock([{ path: o.path, pseudo: o.path }], { networks: [], hosts: [o.guest], maproot: 'root', ro: false }, '', new Map(), new Set());
}

/** A program `be` runs in the background for a VM: printed as `ARGV &` in a dry run. */
export interface Daemon {
  name: string;
  argv: string[];
  lines: string[];
  child?: ChildProcess;
  exited: Promise<number | null>;
}

/** The servers running now: a `be` that exits at once (a stopped `be worker`) ends them on its way out. */
const running = new Set<ChildProcess>();
let exitHook = false;

export async function startDaemon(ctx: BeContext, name: string, argv: string[], onLine?: (line: string) => void, scriptLog?: string): Promise<Daemon> {
  const d: Daemon = { name, argv, lines: [], exited: Promise.resolve(0) };
  // a script keeps the output in SCRIPTLOG, where its wait for the daemon looks
  await ctx.runner.act(`${shJoin(argv)}${scriptLog ? ` > ${shQuote(scriptLog)} 2>&1` : ''} &\nbe_${name}=$!`, async () => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    d.child = child;
    running.add(child);
    child.on('exit', () => running.delete(child));
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const c of running) c.kill('SIGKILL');
      });
    }
    let rest = '';
    const take = (b: Buffer) => {
      const parts = (rest + b.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const l of parts) {
        d.lines.push(l);
        onLine?.(l);
      }
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    d.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        d.lines.push(`${argv[0]}: ${e.message}`);
        resolve(null);
      });
      child.on('exit', (code) => resolve(code));
    });
  });
  return d;
}

/** SIGTERM, then SIGKILL after GRACE ms. */
export async function stopDaemon(ctx: BeContext, d: Daemon, graceMs = 5000): Promise<void> {
  await ctx.runner.act(`kill $be_${d.name} 2>/dev/null; wait $be_${d.name} || true`, async () => {
    const c = d.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    const done = await Promise.race([d.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), graceMs))]);
    if (!done) {
      c.kill('SIGKILL');
      await d.exited;
    }
  });
}

/**
 * The script's form of waitUntil: poll the shell test TEST every 0.2 s until it holds, at most
 * SECONDS (then say so and go on: what needed the daemon fails and is torn down as usual).
 */
function scriptWait(test: string, what: string, seconds = 30): string {
  return `be_t=0; until ${test}; do be_t=$((be_t+1)); if [ $be_t -gt ${seconds * 5} ]; then echo ${shQuote(`be: no ${what} within ${seconds} s`)} >&2; break; fi; sleep 0.2; done`;
}

/** Wait until TEST holds (polled) or the daemon exits. */
async function waitUntil(d: Daemon, what: string, test: () => Promise<boolean> | boolean, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  let dead = false;
  void d.exited.then(() => (dead = true));
  for (;;) {
    if (await test()) return;
    if (dead) throw new BeError(`${d.argv[d.argv.indexOf('--') + 1] || d.argv[0]} exited before ${what}: ${d.lines.slice(-5).join(' | ')}`);
    if (Date.now() > until) throw new BeError(`${d.name}: no ${what} within ${ms / 1000} s: ${d.lines.slice(-5).join(' | ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface VmNetOptions {
  /** The BE's root directory, exported read-write to the guest. */
  path: string;
  mac: string;
  bootBios: string;
  bootEfi: string;
  /** Lines of the servers' output (pxe serve's DHCP/TFTP log). */
  log?: (line: string) => void;
}

export interface VmNet extends VmAddresses {
  /** argv prefix that runs a program in the VM's network namespace. */
  exec: string[];
  pxe?: Daemon;
  close(): Promise<void>;
}

/** The `be pxe serve` flags of a VM's network. */
export function vmPxeArgs(a: VmAddresses, o: Pick<VmNetOptions, 'path' | 'mac' | 'bootBios' | 'bootEfi'>): string[] {
  return [
    'pxe', 'serve', '--address', a.host, '--interface', 'br0', '--range', `${a.guest}-${a.guest}`, '--host', `${o.mac}=${a.guest}`,
    '--tftp-root', join(o.path, 'boot'), '--boot-bios', o.bootBios, '--boot-efi', o.bootEfi, '--root-path', `${a.host}:${o.path}`,
    '--lease-file', join(a.dir, 'leases', 'leases'), '--user', 'root',
  ];
}

/** Make the VM's namespace, bridge and tap, and start rpcbind, ganesha and pxe serve in it. On failure, what was made is removed. */
export async function openVmNet(ctx: BeContext, o: VmNetOptions, a: VmAddresses = nextVm()): Promise<VmNet> {
  const r = ctx.runner;
  const undo: Array<() => Promise<unknown>> = [];
  const close = async () => {
    let first: unknown;
    for (const u of undo.splice(0).reverse()) await u().catch((e) => (first ??= e));
    if (first) throw first;
  };
  const nsExec = ['ip', 'netns', 'exec', a.ns];
  const inMnt = ['nsenter', `--mount=${a.mnt}`, `--net=${NETNS_DIR}/${a.ns}`, '--'];
  r.note(`the VM's network: namespace ${a.ns}, br0 ${a.host}/${a.prefix}, tap0 for the guest at ${a.guest}`);
  try {
    await r.change(['ip', 'netns', 'add', a.ns]);
    undo.push(() => removeNamespace(ctx, a.ns));
    for (const args of [
      ['link', 'set', 'lo', 'up'],
      ['link', 'add', 'br0', 'type', 'bridge'],
      ['addr', 'add', `${a.host}/${a.prefix}`, 'dev', 'br0'],
      ['link', 'set', 'br0', 'up'],
      ['tuntap', 'add', 'dev', 'tap0', 'mode', 'tap'],
      ['link', 'set', 'tap0', 'master', 'br0'],
      ['link', 'set', 'tap0', 'up'],
    ]) await r.change(['ip', '-n', a.ns, ...args]);
    await r.act(`mkdir -p ${a.dir}`, () => mkdir(join(a.dir, 'leases'), { recursive: true }));
    undo.push(() => r.act(`rm -rf ${a.dir}`, () => rm(a.dir, { recursive: true, force: true })));
    await privateMntDir(ctx);
    await r.change(['touch', a.mnt]);
    await r.change(['unshare', `--mount=${a.mnt}`, '--propagation', 'private', 'mount', '-t', 'tmpfs', '-o', 'mode=0755', 'be-vm', '/run']);
    undo.push(() => removeMntNs(ctx, a.mnt));
    await r.change([...inMnt, 'mkdir', '-p', '/run/rpcbind']);

    const rpcbind = await startDaemon(ctx, 'rpcbind', [...inMnt, 'rpcbind', '-f']);
    undo.push(() => stopDaemon(ctx, rpcbind));
    await r.act(scriptWait(`${shJoin([...inMnt, 'rpcinfo', '-p', '127.0.0.1'])} >/dev/null 2>&1`, 'answer from rpcbind'), () => waitUntil(rpcbind, 'answering', async () => (await r.query([...inMnt, 'rpcinfo', '-p', '127.0.0.1'], { allowFailure: true })).status === 0));

    const conf = join(a.dir, 'ganesha.conf');
    const glog = join(a.dir, 'ganesha.log');
    await r.writeFile(conf, vmGaneshaConf({ path: o.path, guest: a.guest, bind: a.host }));
    const ganesha = await startDaemon(ctx, 'ganesha', [...inMnt, 'ganesha.nfsd', '-F', '-f', conf, '-L', glog, '-p', join(a.dir, 'ganesha.pid'), '-N', 'NIV_EVENT']);
    undo.push(() => stopDaemon(ctx, ganesha));
    await r.act(scriptWait(`grep -q 'NFS SERVER INITIALIZED' ${shQuote(glog)} 2>/dev/null`, 'NFS SERVER INITIALIZED in ganesha.log', 60), () => waitUntil(ganesha, 'NFS SERVER INITIALIZED in its log', async () => (await readFile(glog, 'utf8').catch(() => '')).includes('NFS SERVER INITIALIZED')));

    const pxeLog = join(a.dir, 'pxe.log');
    const pxe = await startDaemon(ctx, 'pxe', [...nsExec, ...ctx.runner.self(), ...vmPxeArgs(a, o)], o.log, pxeLog);
    undo.push(() => stopDaemon(ctx, pxe));
    // it binds DHCP, then TFTP, and says so (run as root: the BE's mount directory is root's alone)
    await r.act(scriptWait(`grep -q '^tftp serving ' ${shQuote(pxeLog)} 2>/dev/null`, 'TFTP from be pxe serve'), () => waitUntil(pxe, 'its TFTP server running', () => pxe.lines.some((l) => l.startsWith('tftp serving '))));
    return { ...a, exec: nsExec, pxe, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}

/** The mount namespace files live in a private mount of their own (unshare(1) refuses them on a shared one). */
async function privateMntDir(ctx: BeContext): Promise<void> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  if (info.split('\n').some((l) => l.split(' ')[4] === MNTNS_DIR)) return;
  await ctx.runner.change(['mkdir', '-p', MNTNS_DIR]);
  await ctx.runner.change(['mount', '--bind', MNTNS_DIR, MNTNS_DIR]);
  await ctx.runner.change(['mount', '--make-private', MNTNS_DIR]);
}

async function removeMntNs(ctx: BeContext, mnt: string): Promise<void> {
  await ctx.runner.change(['umount', mnt], { allowFailure: true });
  await ctx.runner.change(['rm', '-f', mnt]);
}

/** End whatever still runs in namespace NS, then delete it. */
async function removeNamespace(ctx: BeContext, ns: string): Promise<void> {
  await ctx.runner.act(`ip netns pids ${ns} | xargs -r kill -9`, async () => {
    const pids = (await ctx.runner.query(['ip', 'netns', 'pids', ns], { allowFailure: true })).stdout.split('\n').filter((p) => /^\d+$/.test(p));
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (let i = 0; i < 50 && pids.some((p) => processAlive(Number(p))); i++) await new Promise((res) => setTimeout(res, 100));
  });
  await ctx.runner.change(['ip', 'netns', 'del', ns], { allowFailure: true });
}

/** Remove the VM networks of `be` processes that are gone (killed runs); returns their names. */
export async function cleanupVmLeftovers(ctx: BeContext): Promise<string[]> {
  const prefix = vmPrefix();
  const names = [...new Set([
    ...(await readdir(NETNS_DIR).catch(() => [] as string[])),
    ...(await readdir(MNTNS_DIR).catch(() => [] as string[])).map((n) => n.replace(/\.mnt$/, '')),
  ])].filter((n) => n.startsWith(prefix));
  const gone: string[] = [];
  for (const ns of names) {
    const m = /^(\d+)-\d+$/.exec(ns.slice(prefix.length));
    if (!m || processAlive(Number(m[1]))) continue;
    await removeNamespace(ctx, ns);
    await removeMntNs(ctx, join(MNTNS_DIR, `${ns}.mnt`));
    await rm(join(tmpdir(), 'be-vm', ns), { recursive: true, force: true });
    gone.push(ns);
  }
  return gone;
}
