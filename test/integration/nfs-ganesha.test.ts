import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, writeFile, readFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { be, beOk, BE_BIN } from '../helpers/cli.js';

/**
 * nfs-ganesha (VFS backend) serving a zfs-fuse BE that `be sharenfs` exported, inside a network
 * network namespace of its own;
 * libnfs-utils and be's own MOUNT client read from it in a second namespace.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function holder(args: string[]): Promise<{ pid: number; proc: ResultPromise }> {
  const proc = execa('unshare', [...args, '--', 'sleep', '600'], { reject: false });
  for (let i = 0; i < 50 && !proc.pid; i++) await sleep(20);
  // wait until sleep has replaced unshare (the namespaces exist)
  for (let i = 0; i < 100; i++) {
    const comm = await readFile(`/proc/${proc.pid}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === 'sleep') break;
    await sleep(20);
  }
  return { pid: proc.pid!, proc };
}

describe('be sharenfs through nfs-ganesha, read over NFSv3 from another namespace', () => {
  let pool: TestPool;
  let work: string;
  let server: Awaited<ReturnType<typeof holder>> | undefined;
  let client: Awaited<ReturnType<typeof holder>> | undefined;
  const daemons: ResultPromise[] = [];
  const createdRunFiles: string[] = [];
  const net = 100 + Math.floor(Math.random() * 150);
  const serverIp = `10.${net}.${1 + Math.floor(Math.random() * 250)}.1`;
  const clientIp = serverIp.replace(/\.1$/, '.2');
  const cidr = serverIp.replace(/\.1$/, '.0/24');
  const veth = `bev${randomBytes(3).toString('hex')}`;
  let conf: string;
  let pidFile: string;
  let logFile: string;
  const nas = () => `${pool.pool}/be/files`;
  const inServer = (argv: string[]) => ['nsenter', '-t', String(server!.pid), '-n', '--', ...argv];
  const inClient = (argv: string[]) => ['nsenter', '-t', String(client!.pid), '-n', '--', ...argv];
  const run = (argv: string[]) => execa(argv[0], argv.slice(1), { reject: false });

  beforeAll(async () => {
    pool = await makeTestPool('256M');
    work = await mkdtemp(join(tmpdir(), 'be-ganesha-'));
    // ganesha must see the BE mounted after it started: it shares the host's mount namespace (this
    // host's / is private, so a namespace of its own would not get later mounts), and so does
    // rpcbind's socket in /run: refuse to run beside a host rpcbind rather than take it over.
    const other = await execa('pgrep', ['-x', 'rpcbind'], { reject: false });
    if (other.exitCode === 0) throw new Error(`an rpcbind already runs on this host (pid ${other.stdout.trim()}); stop it to run this test`);
    for (const f of ['/run/rpcbind.sock', '/run/rpcbind.lock', '/run/rpcbind/portmap.xdr', '/run/rpcbind/rpcbind.xdr']) if (!existsSync(f)) createdRunFiles.push(f);
    server = await holder(['--net']);
    client = await holder(['--net']);
    await execa('ip', ['link', 'add', `${veth}a`, 'type', 'veth', 'peer', 'name', `${veth}b`]);
    await execa('ip', ['link', 'set', `${veth}a`, 'netns', String(server.pid)]);
    await execa('ip', ['link', 'set', `${veth}b`, 'netns', String(client.pid)]);
    for (const [pid, dev, ip] of [[server.pid, `${veth}a`, serverIp], [client.pid, `${veth}b`, clientIp]] as const) {
      await execa('nsenter', ['-t', String(pid), '-n', '--', 'ip', 'addr', 'add', `${ip}/24`, 'dev', dev]);
      await execa('nsenter', ['-t', String(pid), '-n', '--', 'ip', 'link', 'set', dev, 'up']);
      await execa('nsenter', ['-t', String(pid), '-n', '--', 'ip', 'link', 'set', 'lo', 'up']);
    }
    conf = join(work, 'ganesha.conf');
    pidFile = join(work, 'ganesha.pid');
    logFile = join(work, 'ganesha.log');
    await writeFile(conf, '# the admin\'s ganesha.conf\nNFS_CORE_PARAM {\n\tProtocols = 3, 4;\n}\nNFSV4 {\n\tGraceless = true;\n}\n');
    await mkdir(join(work, 'recovery'));
    daemons.push(execa(inServer(['rpcbind', '-f'])[0], inServer(['rpcbind', '-f']).slice(1), { reject: false }));
    for (let i = 0; i < 100; i++) {
      if ((await run(inServer(['rpcinfo', '-p', '127.0.0.1']))).exitCode === 0) break;
      await sleep(50);
    }
    const g = inServer(['ganesha.nfsd', '-F', '-f', conf, '-L', logFile, '-p', pidFile, '-N', 'NIV_EVENT']);
    daemons.push(execa(g[0], g.slice(1), { reject: false }));
    for (let i = 0; i < 200; i++) {
      if ((await readFile(logFile, 'utf8').catch(() => '')).includes('NFS SERVER INITIALIZED')) break;
      await sleep(100);
    }
    expect(await readFile(logFile, 'utf8')).toContain('NFS SERVER INITIALIZED');
  }, 120_000);

  afterAll(async () => {
    // ganesha first: it holds the exported directories open
    for (const d of daemons.reverse()) {
      d.kill('SIGTERM');
      const done = await Promise.race([d.then(() => true), sleep(10_000).then(() => false)]);
      if (!done) {
        d.kill('SIGKILL');
        await d;
      }
    }
    // rpcbind's files in the host's /run, if this test made them
    for (const f of createdRunFiles) await rm(f, { force: true });
    for (const h of [server, client]) {
      if (!h) continue;
      h.proc.kill('SIGKILL');
      await h.proc;
    }
    if (pool) await be(['unsharenfs', nas(), '--exports', join(work ?? tmpdir(), 'unused-exports')]).catch(() => undefined);
    await pool?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('NAS in two commands, served by ganesha: nfs-ls and nfs-cp read it, be gets its file handle', async () => {
    await beOk(['create', '-l', 'flat', nas()]);
    const out = await beOk(['sharenfs', nas(), '--network', cidr, '--maproot', 'root', '--ganesha-conf', conf, '--ganesha-pid', pidFile]);
    const dir = join(pool.altroot, 'be', 'files');
    expect(out).toBe(`${dir}\n`);
    await writeFile(join(dir, 'hello.txt'), 'served by ganesha from zfs-fuse\n');

    // the admin's lines stay; be's file is included once
    const confText = await readFile(conf, 'utf8');
    expect(confText.startsWith("# the admin's ganesha.conf\n")).toBe(true);
    expect(confText).toContain(`%include "${join(work, 'be-exports.conf')}"\n`);
    const exportsText = await readFile(join(work, 'be-exports.conf'), 'utf8');
    expect(exportsText).toContain(`Path = "${dir}";`);
    expect(exportsText).toContain(`CLIENT { Clients = ${cidr}; Access_Type = RW; }`);

    let listing = '';
    for (let i = 0; i < 50; i++) {
      const ls = await run(inClient(['nfs-ls', `nfs://${serverIp}${dir}`]));
      listing = ls.stdout;
      if (ls.exitCode === 0 && listing.includes('hello.txt')) break;
      await sleep(200); // SIGHUP reload is asynchronous
    }
    expect(listing).toContain('hello.txt');
    const copy = join(work, 'copy.txt');
    const cp = await run(inClient(['nfs-cp', `nfs://${serverIp}${dir}/hello.txt`, copy]));
    expect(cp.exitCode).toBe(0);
    expect(await readFile(copy, 'utf8')).toBe('served by ganesha from zfs-fuse\n');

    // be's MOUNT v3 client, in the client namespace: a stable handle for the exported path
    const h1 = await run(inClient([BE_BIN, 'nfshandle', serverIp, dir, '--json']));
    const h2 = await run(inClient([BE_BIN, 'nfshandle', serverIp, dir, '--json']));
    expect(h1.stderr).toBe('');
    const a = JSON.parse(h1.stdout);
    const b = JSON.parse(h2.stdout);
    expect(a.handle).toMatch(/^([0-9a-f]{2})+$/);
    expect(a.length).toBe(a.handle.length / 2);
    expect(b.handle).toBe(a.handle);

    // bootnfs's plan (dry-run: bhyve is FreeBSD's) carries that handle for the loader
    const plan = await run(inClient([BE_BIN, '-n', 'bootnfs', nas(), '--vmm', 'bhyve', '--vm', 'files', '--address', `${clientIp.replace(/\.2$/, '.10')}/24`, '--mac', '02:01:02:03:04:05', '--server', serverIp]));
    expect(plan.stderr).toBe('');
    expect(plan.stdout).toContain(`-e boot.nfsroot.nfshandle=X${a.handle}X -e boot.nfsroot.nfshandlelen=${a.length} -e boot.nfsroot.path=${dir}`);
    expect(plan.stdout).toContain('bhyvectl --destroy --vm=files');

    // a path the server does not export: its refusal, on one line
    const refused = await run(inClient([BE_BIN, 'nfshandle', serverIp, join(pool.altroot, 'not-exported')]));
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toMatch(/^be: 10\.[0-9.]+:\/\S+: mount refused: MNT3ERR_(ACCES|NOENT|PERM) \([a-z ]+\)$/); // one line (execa strips the final newline)
    expect(refused.stderr).not.toContain('\n');

    // unsharenfs: ganesha stops serving it, be unmounts it
    await beOk(['unsharenfs', nas(), '--ganesha-conf', conf, '--ganesha-pid', pidFile]);
    expect(await readFile(join(work, 'be-exports.conf'), 'utf8')).not.toContain(dir);
    let gone = false;
    for (let i = 0; i < 50 && !gone; i++) {
      gone = (await run(inClient([BE_BIN, 'nfshandle', serverIp, dir]))).exitCode !== 0;
      if (!gone) await sleep(200);
    }
    expect(gone).toBe(true);
    expect(await readFile('/proc/self/mounts', 'utf8')).not.toContain(`${nas()} `);
  }, 180_000);
});
