#!/usr/bin/env node
// bench/dhcp: 4-way DHCP exchanges per second and drop ratio, measured with perfdhcp against the
// `be` DHCP server (durable, fsync'd lease journal) and against dnsmasq with a lease file, both in
// the same run, at offered rates of 500, 2000 and 5000 per second. Goal: >= 2,000/s with < 1% drops.
// Also prints each server's peak resident memory (VmHWM) over each run.
//
// Needs (not installed by scripts/install-deps): perfdhcp (Debian package kea-admin) and dnsmasq
// (dnsmasq-base). dnsmasq runs with --no-ping (its ping before each offer would otherwise cap it
// far lower) and a lease file. Run as root: node bench/dhcp.mjs    (PERIOD=seconds per run, default 5;
// RATES=500,2000,5000). It creates two network namespaces joined by a veth pair, with a
// 10.x.0.0/16 network inside them only, and removes them at the end.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomInt } from 'node:crypto';

const repo = fileURLToPath(new URL('..', import.meta.url));
const period = Number(process.env.PERIOD ?? 5);
const rates = (process.env.RATES ?? '500,2000,5000').split(',').map(Number);

for (const prog of ['perfdhcp', 'dnsmasq', 'ip']) {
  if (spawnSync('sh', ['-c', `command -v ${prog}`]).status !== 0) {
    console.error(`bench/dhcp: ${prog} not found (apt-get install kea-admin dnsmasq-base iproute2)`);
    process.exit(1);
  }
}
if (process.getuid?.() !== 0) {
  console.error('bench/dhcp: run as root (network namespaces, port 67)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'be-bench-dhcp-'));
const tag = randomBytes(3).toString('hex');
const srvNs = `bebs-${tag}`;
const cliNs = `bebc-${tag}`;
const net = `10.${randomInt(100, 250)}`;
const serverIp = `${net}.0.1`;
const relayIp = `${net}.255.254`;
const ip = (...a) => execFileSync('ip', a, { stdio: 'inherit' });

function cleanup() {
  spawnSync('ip', ['netns', 'del', srvNs]);
  spawnSync('ip', ['netns', 'del', cliNs]);
  rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Start a server process in the server namespace and wait until its port is bound. */
async function startProc(argv, readyRe) {
  const p = spawn('ip', ['netns', 'exec', srvNs, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  for (let i = 0; i < 100; i++) {
    if (readyRe.test(out)) return p;
    if (p.exitCode !== null) break;
    await sleep(50);
  }
  p.kill('SIGKILL');
  throw new Error(`${argv.join(' ')} did not start:\n${out}`);
}

async function stopProc(p) {
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

function perfdhcp(rate) {
  const r = spawnSync('ip', ['netns', 'exec', cliNs, 'perfdhcp', '-4', '-r', String(rate), '-R', String(rate * period * 2),
    '-p', String(period), '-W', '500000', '-l', relayIp, serverIp], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  const section = (name) => out.split(`***Statistics for: ${name}***`)[1] ?? '';
  const num = (text, key) => Number((new RegExp(`${key}: ([\\d.]+)`).exec(text) ?? [])[1] ?? NaN);
  const discovers = num(section('DISCOVER-OFFER'), 'sent packets');
  const acks = num(section('REQUEST-ACK'), 'received packets');
  if (!Number.isFinite(discovers)) throw new Error(`perfdhcp output not understood:\n${out}`);
  // completed exchanges over the sending period (perfdhcp's own "Rate" also counts its exit wait)
  return { rate: acks / period, discovers, acks, drop: discovers ? (discovers - acks) / discovers : 1 };
}

const results = [];
try {
  ip('netns', 'add', srvNs);
  ip('netns', 'add', cliNs);
  ip('link', 'add', 'eth0', 'netns', srvNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cliNs);
  ip('-n', srvNs, 'addr', 'add', `${serverIp}/16`, 'dev', 'eth0');
  ip('-n', cliNs, 'addr', 'add', `${relayIp}/16`, 'dev', 'eth0');
  for (const ns of [srvNs, cliNs]) {
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  // the `be` server, bundled from source with the test helper that runs it as a process
  const { build } = await import('esbuild');
  await build({ entryPoints: [join(repo, 'test/helpers/dhcp/serve.ts')], outdir: dir, bundle: true, format: 'esm', platform: 'node', target: 'node20', logLevel: 'warning' });
  const range = [`${net}.1.0`, `${net}.250.255`];

  for (const rate of rates) {
    for (const peer of ['be', 'dnsmasq']) {
      const leases = join(dir, `${peer}-${rate}.leases`);
      let proc;
      if (peer === 'be') {
        const cfg = join(dir, 'be.json');
        writeFileSync(cfg, JSON.stringify({ serverIp, subnet: `${net}.0.0/16`, range: range.join('-'), leaseTime: 3600, leaseFile: leases }));
        proc = await startProc([process.execPath, join(dir, 'serve.js'), cfg], /READY/);
      } else {
        proc = await startProc(['dnsmasq', '--keep-in-foreground', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--user=root', '--pid-file',
          `--dhcp-range=${range[0]},${range[1]},255.255.0.0,1h`, `--dhcp-leasefile=${leases}`, '--dhcp-authoritative', '--quiet-dhcp', '--no-ping',
          `--dhcp-lease-max=100000`, '--log-facility=-'], /started|DHCP, IP range/);
        await sleep(300);
      }
      const r = perfdhcp(rate);
      // the server's peak resident memory over the run (the kernel's high-water mark)
      const peakKiB = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))?.[1] ?? NaN);
      await stopProc(proc);
      const stored = existsSync(leases) ? readFileSync(leases, 'utf8').split('\n').filter(Boolean).length : 0;
      results.push({ peer, offered: rate, ...r, stored, peakKiB });
      console.log(`${peer.padEnd(8)} offered ${String(rate).padStart(5)}/s: ${r.rate.toFixed(0).padStart(5)} 4-way/s, ${r.acks}/${r.discovers} ACKed, drops ${(100 * r.drop).toFixed(2)}%, ${stored} leases on disk, peak RSS ${(peakKiB / 1024).toFixed(1)} MiB`);
    }
  }
} finally {
  cleanup();
}

console.log('\nrate   be 4-way/s  be drops  dnsmasq 4-way/s  dnsmasq drops  be/dnsmasq  peak RSS be/dnsmasq');
for (const rate of rates) {
  const b = results.find((r) => r.peer === 'be' && r.offered === rate);
  const d = results.find((r) => r.peer === 'dnsmasq' && r.offered === rate);
  if (!b || !d) continue;
  console.log(`${String(rate).padEnd(6)} ${b.rate.toFixed(0).padStart(10)} ${(100 * b.drop).toFixed(2).padStart(8)}% ${d.rate.toFixed(0).padStart(16)} ${(100 * d.drop).toFixed(2).padStart(13)}% ${(b.rate / d.rate).toFixed(2).padStart(10)}x ${`${(b.peakKiB / 1024).toFixed(1)}/${(d.peakKiB / 1024).toFixed(1)} MiB`.padStart(19)}`);
}
const goal = results.find((r) => r.peer === 'be' && r.offered === 2000);
if (goal) console.log(`\ngoal (>= 2000/s, < 1% drops, durable leases) at 2000/s offered: ${goal.rate >= 1980 && goal.drop < 0.01 ? 'met' : 'NOT met'}`);
