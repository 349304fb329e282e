/**
 * DHCP test plumbing: bundles the helper programs under test/helpers/dhcp/ with esbuild (they
 * must run as separate processes inside network namespaces), starts a server in a namespace, and
 * runs real clients.
 */
import { build } from 'esbuild';
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DhcpServerOptions } from '../../src/net/dhcp/index.js';
import { makeLan, type Lan } from './netns.js';
import { watch } from './proc.js';

const here = fileURLToPath(new URL('./dhcp/', import.meta.url));
const repo = fileURLToPath(new URL('../../', import.meta.url));

export interface Helpers {
  dir: string;
  serve: string;
  exchange: string;
  listen: string;
  npmClient: string;
  fuzz: string;
  storm: string;
  arrival: string;
  cleanup(): Promise<void>;
}

export async function buildHelpers(): Promise<Helpers> {
  const dir = await mkdtemp(join(tmpdir(), 'be-dhcp-test-'));
  await build({
    entryPoints: ['serve', 'exchange', 'listen', 'npm-client', 'fuzz', 'storm', 'arrival'].map((n) => join(here, `${n}.ts`)),
    outdir: dir,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    // the npm dhcp client and koffi (native) are loaded from the repository's node_modules at run time
    external: ['dhcp', 'koffi'],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  // let the bundles resolve the repository's node_modules
  await execa('ln', ['-s', join(repo, 'node_modules'), join(dir, 'node_modules')]);
  return {
    dir,
    serve: join(dir, 'serve.js'),
    exchange: join(dir, 'exchange.js'),
    listen: join(dir, 'listen.js'),
    npmClient: join(dir, 'npm-client.js'),
    fuzz: join(dir, 'fuzz.js'),
    storm: join(dir, 'storm.js'),
    arrival: join(dir, 'arrival.js'),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface ServerProcess {
  proc: ResultPromise;
  lines: string[];
  /** Resolves with the first output line matching `re`. */
  waitFor(re: RegExp, ms?: number): Promise<string>;
  /** SIGTERM and wait; returns the STATS line's object. */
  stop(): Promise<Record<string, number>>;
  kill9(): Promise<void>;
}

export async function startServer(h: Helpers, ns: string, opts: DhcpServerOptions): Promise<ServerProcess> {
  const cfg = join(h.dir, `cfg-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(cfg, JSON.stringify(opts));
  const w = watch(['ip', 'netns', 'exec', ns, process.execPath, h.serve, cfg], { stdoutOnly: true, name: 'dhcp server', timeoutMs: 15_000 });
  await w.waitFor(/^READY/);
  return {
    proc: w.proc, lines: w.lines, waitFor: w.waitFor,
    async stop() {
      w.proc.kill('SIGTERM');
      const line = await w.waitFor(/^STATS /);
      await w.proc;
      return JSON.parse(line.slice(6));
    },
    async kill9() {
      await w.stop('SIGKILL');
    },
  };
}

/** Run a command in a namespace and return its stdout (throws on failure). */
export async function nsRun(ns: string, argv: string[], opts: { timeout?: number; reject?: boolean } = {}) {
  return execa('ip', ['netns', 'exec', ns, ...argv], { timeout: opts.timeout ?? 30_000, reject: opts.reject ?? true });
}

/** A udhcpc -s script that appends its event and environment to a file, as one JSON line. */
export async function udhcpcScript(dir: string): Promise<{ script: string; log: string }> {
  const script = join(dir, `udhcpc-${Math.random().toString(36).slice(2)}.sh`);
  const log = `${script}.log`;
  await writeFile(script, `#!/bin/sh\nprintf '%s\\n' "$1" >> ${log}\nenv | grep -E '^(ip|subnet|router|dns|domain|hostname|lease|serverid|siaddr|boot_file|tftp|rootpath|interface|sname|mask|broadcast)=' | sort >> ${log}\necho --- >> ${log}\n`, { mode: 0o755 });
  return { script, log };
}

/**
 * Parse the udhcpc script log into events: [{event, env}]. Only blocks the script has finished
 * (ended by its `---` line) count: the log may be read while the script is still writing one.
 */
export function parseUdhcpcLog(text: string): Array<{ event: string; env: Record<string, string> }> {
  const out: Array<{ event: string; env: Record<string, string> }> = [];
  for (const block of text.split('---\n').slice(0, -1)) {
    const lines = block.split('\n').filter(Boolean);
    if (!lines.length) continue;
    const env: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf('=');
      env[l.slice(0, i)] = l.slice(i + 1);
    }
    out.push({ event: lines[0], env });
  }
  return out;
}

export async function cleanupFile(path: string): Promise<void> {
  await rm(path, { force: true });
}

/** Send one packet from inside `ns` and collect up to `count` replies (JSON lines from exchange.ts). */
export async function exchange(h: Helpers, ns: string, a: { bind: string; bindPort: number; to: string; toPort: number; packet: Buffer; count?: number; waitMs?: number }) {
  const r = await nsRun(ns, [process.execPath, h.exchange, a.bind, String(a.bindPort), a.to, String(a.toPort), a.packet.toString('hex'), String(a.count ?? 1), String(a.waitMs ?? 5000)]);
  return String(r.stdout).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { from: string; port: number; hex: string });
}

export interface RelayLab {
  lan: Lan;
  h: Helpers;
  /** A scratch directory for lease files. */
  dir: string;
  destroy(): Promise<void>;
}

/**
 * One server namespace on a bridge, plus `<prefix>.254` on the client side for a relay to send
 * from, the built helper scripts and a scratch directory: what the storm and fuzz tests share.
 */
export async function relayLab(name: string): Promise<RelayLab> {
  const dir = await mkdtemp(join(tmpdir(), `be-dhcp-${name}-`));
  const h = await buildHelpers();
  const lan = await makeLan(1);
  await execa('ip', ['-n', lan.client, 'addr', 'add', `${lan.prefix}.254/24`, 'dev', 'br0']);
  return {
    lan,
    h,
    dir,
    async destroy() {
      await lan.destroy();
      await h.cleanup();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
