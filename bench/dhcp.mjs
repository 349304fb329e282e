#!/usr/bin/env node
// bench/dhcp: 4-way DHCP exchanges per second and drop ratio, measured with perfdhcp against
// `be pxe serve --no-tftp` (the real command; its lease journal is fsync'd before each ACK
// leaves), ISC Kea (kea-dhcp4, memfile lease file with persist) and dnsmasq (lease file), all in
// the same run, at offered rates of 5,000, 10,000 and 20,000 per second.
// Goals, as ratios against the peers of the same run: be completes >= 10,000/s at 10,000/s
// offered with < 1% drops; at 20,000/s it still completes >= 90% of its best rate; be/Kea >= 1
// at every rate; be killed with SIGKILL in the middle of a run at 10,000/s loses no lease the
// clients saw ACKed (their ACKs captured with tcpdump). Also prints each server's CPU time (user + system) per ACKed exchange and peak
// resident memory (VmHWM) over each run, perfdhcp's own CPU time (client and server share the
// machine's cores), the load average, the leases each left on disk, and be's own counts.
//
// Needs (not installed by scripts/install-deps): perfdhcp (Debian package kea-admin),
// kea-dhcp4 (kea-dhcp4-server), dnsmasq (dnsmasq-base) and tcpdump. dnsmasq runs with --no-ping (its ping
// before each offer would otherwise cap it far lower). Run as root after `node build.mjs`:
//   node bench/dhcp.mjs    (PERIOD=seconds per run, default 5; RATES=5000,10000,20000;
//                           PEERS=be,kea,dnsmasq; ROUNDS=1; NS_PREFIX=beb; KILL=0 skips
//                           the kill -9 run; PERFDHCP_THREADS=multi for perfdhcp's
//                           default thread mode on machines with more cores)
// It creates two network namespaces joined by a veth pair, with a 10.x.0.0/14 network inside
// them only, and removes them at the end.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes, randomInt } from 'node:crypto';

const repo = fileURLToPath(new URL('..', import.meta.url));
const period = Number(process.env.PERIOD ?? 5);
const rates = (process.env.RATES ?? '5000,10000,20000').split(',').map(Number);
const peers = (process.env.PEERS ?? 'be,kea,dnsmasq').split(',');
const rounds = Number(process.env.ROUNDS ?? 1);
// perfdhcp sends and receives in one thread (-g single) unless PERFDHCP_THREADS=multi: its
// multi-thread mode spins a receiver thread of its own, which on a 2-core machine takes the core
// the server under test needs (the same for every peer).
const threadMode = ['-g', process.env.PERFDHCP_THREADS ?? 'single'];

const needs = { be: [], kea: ['kea-dhcp4'], dnsmasq: ['dnsmasq'] };
for (const prog of ['perfdhcp', 'ip', 'ss', 'tcpdump', ...peers.flatMap((p) => needs[p] ?? [])]) {
  if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', prog]).status !== 0) {
    console.error(`bench/dhcp: ${prog} not found (apt-get install kea-admin kea-dhcp4-server dnsmasq-base iproute2 tcpdump)`);
    process.exit(1);
  }
}
if (process.getuid?.() !== 0) {
  console.error('bench/dhcp: run as root (network namespaces, port 67)');
  process.exit(1);
}
if (peers.includes('be') && !existsSync(join(repo, 'dist/main.js'))) {
  console.error('bench/dhcp: build be first (node build.mjs)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'be-bench-dhcp-'));
const tag = randomBytes(3).toString('hex');
const nsPrefix = process.env.NS_PREFIX ?? 'beb';
const srvNs = `${nsPrefix}s-${tag}`;
const cliNs = `${nsPrefix}c-${tag}`;
const a = 4 * randomInt(25, 62); // 10.a.0.0/14
const serverIp = `10.${a}.0.1`;
const relayIp = `10.${a + 3}.255.254`;
const subnet = `10.${a}.0.0/14`;
const range = [`10.${a}.1.0`, `10.${a + 3}.250.255`];
const ip = (...args) => execFileSync('ip', args, { stdio: 'inherit' });

function cleanup() {
  spawnSync('ip', ['netns', 'del', srvNs]);
  spawnSync('ip', ['netns', 'del', cliNs]);
  rmSync(dir, { recursive: true, force: true });
}
process.on('SIGINT', () => { cleanup(); process.exit(130); });

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Is UDP port 67 bound in the server namespace? */
function bound() {
  const r = spawnSync('ip', ['netns', 'exec', srvNs, 'ss', '-H', '-uln', 'sport', '=', ':67'], { encoding: 'utf8' });
  return r.stdout.trim().length > 0;
}

/**
 * Start a server process in the server namespace and wait until port 67 is bound. Its output goes
 * to a log file, as a daemon's would (`be` logs one line per lease).
 */
async function startProc(argv, log) {
  const fd = openSync(log, 'w');
  const p = spawn('ip', ['netns', 'exec', srvNs, ...argv], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const out = () => readFileSync(log, 'utf8').slice(-4000);
  for (let i = 0; i < 200; i++) {
    if (bound()) {
      await sleep(200);
      return p;
    }
    if (p.exitCode !== null) break;
    await sleep(50);
  }
  p.kill('SIGKILL');
  throw new Error(`${argv.join(' ')} did not start:\n${out()}`);
}

async function stopProc(p) {
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await done;
}

function perfdhcp(rate) {
  const children0 = childrenTicks();
  const r = spawnSync('ip', ['netns', 'exec', cliNs, 'perfdhcp', '-4', '-r', String(rate), '-R', String(rate * period * 2),
    '-p', String(period), '-W', '500000', ...threadMode, '-l', relayIp, serverIp], { encoding: 'utf8' });
  const out = r.stdout + r.stderr;
  const section = (name) => out.split(`***Statistics for: ${name}***`)[1] ?? '';
  const num = (text, key) => Number((new RegExp(`${key}: ([\\d.]+)`).exec(text) ?? [])[1] ?? NaN);
  const discovers = num(section('DISCOVER-OFFER'), 'sent packets');
  const acks = num(section('REQUEST-ACK'), 'received packets');
  if (!Number.isFinite(discovers)) throw new Error(`perfdhcp output not understood:\n${out}`);
  // completed exchanges over the sending period (perfdhcp's own "Rate" also counts its exit wait)
  // perfdhcp's own CPU time: it shares the machine's cores with the server
  const clientMs = (childrenTicks() - children0) * 10;
  return { rate: acks / period, discovers, acks, drop: discovers ? (discovers - acks) / discovers : 1, clientMs };
}

function keaConfig(leases) {
  return {
    Dhcp4: {
      'interfaces-config': { interfaces: ['eth0'], 'dhcp-socket-type': 'udp' },
      'lease-database': { type: 'memfile', persist: true, name: leases, 'lfc-interval': 0 },
      'valid-lifetime': 3600,
      subnet4: [{ id: 1, subnet, pools: [{ pool: range.join(' - ') }] }],
      loggers: [{ name: 'kea-dhcp4', 'output_options': [{ output: 'stdout' }], severity: 'WARN' }],
    },
  };
}

/** Lines in a lease file that name a lease (Kea's CSV has a header line). */
function storedLeases(peer, file) {
  if (!existsSync(file)) return 0;
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  return peer === 'kea' ? Math.max(0, lines.length - 1) : lines.length;
}

// BE=path runs another build of `be` (e.g. a copy of bin/ and dist/ from before a change; the copy
// needs a node_modules beside it that holds koffi, or it runs without its direct socket calls)
const beBin = process.env.BE ?? join(repo, 'bin/be');

async function start(peer, leases) {
  const log = join(dirname(leases), 'log');
  if (peer === 'be') {
    return startProc([beBin, 'pxe', 'serve', '--no-tftp', '--address', serverIp, '--subnet', subnet,
      '--range', range.join('-'), '--lease-file', leases, '--user', 'root'], log);
  }
  if (peer === 'kea') {
    const cfg = join(dir, 'kea.json');
    writeFileSync(cfg, JSON.stringify(keaConfig(leases)));
    return startProc(['env', `KEA_PIDFILE_DIR=${dir}`, `KEA_LOCKFILE_DIR=${dir}`, 'kea-dhcp4', '-c', cfg], log);
  }
  return startProc(['dnsmasq', '--keep-in-foreground', '--no-daemon', '--conf-file=/dev/null', '--port=0', '--user=root', '--pid-file',
    `--dhcp-range=${range[0]},${range[1]},255.252.0.0,1h`, `--dhcp-leasefile=${leases}`, '--dhcp-authoritative', '--quiet-dhcp', '--no-ping',
    '--dhcp-lease-max=300000', '--log-facility=-'], log);
}

/** CPU time a process has used in user and in system mode, in clock ticks (USER_HZ, 100 on Linux). */
function cpuTicks(pid) {
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]), sys: Number(f[12]) };
}

/** UDP datagrams a namespace's kernel dropped for a full receive buffer (RcvbufErrors of /proc/net/snmp). */
function rcvbufErrors(ns) {
  const lines = execFileSync('ip', ['netns', 'exec', ns, 'cat', '/proc/net/snmp'], { encoding: 'utf8' }).split('\n').filter((l) => l.startsWith('Udp:'));
  const [names, values] = lines.map((l) => l.split(/\s+/));
  return Number(values?.[names.indexOf('RcvbufErrors')] ?? NaN);
}

/** CPU time of this process's waited-for children (cutime + cstime), in clock ticks. */
function childrenTicks() {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[13]) + Number(f[14]);
}

/** The 1-minute load average (other work on the machine shares its cores with the servers and perfdhcp). */
function loadAverage() {
  return readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
}

/**
 * The DHCP ACKs in a pcap file (as tcpdump -w writes it on Ethernet): client hardware address and
 * address leased, read from the BOOTP header after the IPv4 and UDP headers.
 */
function ackedInCapture(file) {
  const acked = new Map();
  if (!existsSync(file)) return acked;
  const b = readFileSync(file);
  if (b.length < 24) return acked;
  const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (at) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  for (let at = 24; at + 16 <= b.length;) {
    const caplen = u32(at + 8);
    const pkt = b.subarray(at + 16, at + 16 + caplen);
    at += 16 + caplen;
    if (pkt.length < 14 + 20 || pkt.readUInt16BE(12) !== 0x0800) continue;
    const udp = 14 + 4 * (pkt[14] & 15);
    const d = pkt.subarray(udp + 8);
    if (d.length < 241 || d.readUInt32BE(236) !== 0x63825363) continue;
    let type = 0;
    for (let i = 240; i + 1 < d.length && d[i] !== 255;) {
      if (d[i] === 0) { i++; continue; }
      if (d[i] === 53) type = d[i + 2];
      i += 2 + d[i + 1];
    }
    if (type !== 5) continue;
    const mac = [...d.subarray(28, 28 + Math.min(d[2], 16))].map((x) => x.toString(16).padStart(2, '0')).join(':');
    acked.set(mac, [...d.subarray(16, 20)].join('.'));
  }
  return acked;
}

/**
 * kill -9 in the middle of a run at `rate`: every ACK the client side saw (captured by tcpdump in
 * its namespace) must name a lease that is in be's journal afterwards.
 */
async function killRun(rate) {
  const leases = join(dir, 'kill', 'leases');
  execFileSync('mkdir', ['-p', join(dir, 'kill')]);
  const proc = await start('be', leases);
  const pcap = join(dir, 'kill', 'acks.pcap');
  const dump = spawn('ip', ['netns', 'exec', cliNs, 'tcpdump', '-i', 'eth0', '-U', '-s', '600', '-w', pcap, 'udp and src port 67'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let dumpErr = '';
  await new Promise((resolve, reject) => {
    dump.stderr.on('data', (d) => { dumpErr += d; if (/listening on/.test(dumpErr)) resolve(); });
    dump.once('exit', () => reject(new Error(`tcpdump did not start: ${dumpErr}`)));
  });
  const client = spawn('ip', ['netns', 'exec', cliNs, 'perfdhcp', '-4', '-r', String(rate), '-R', String(rate * period * 2),
    '-p', String(period), '-W', '500000', ...threadMode, '-l', relayIp, serverIp], { stdio: 'ignore' });
  const clientDone = new Promise((r) => client.once('exit', r));
  await sleep((period * 1000) / 2);
  const died = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGKILL'); // `ip netns exec` execs the server: this is be itself
  await died;
  await clientDone;
  dump.kill('SIGINT');
  await new Promise((r) => dump.once('exit', r));
  const acked = ackedInCapture(pcap);
  const onDisk = new Map();
  for (const line of readFileSync(leases, 'utf8').split('\n')) {
    try {
      const rec = JSON.parse(line);
      if (rec.op === 'bind') onDisk.set(rec.mac, rec.ip);
    } catch {
      // a line torn by the kill
    }
  }
  const lost = [...acked].filter(([mac, addr]) => onDisk.get(mac) !== addr);
  const drops = /(\d+) packets dropped by kernel/.exec(dumpErr)?.[1] ?? '?';
  console.log(`kill -9 after ${period / 2}s at ${rate}/s offered: ${acked.size} ACKs seen by the clients (capture dropped ${drops}), ${onDisk.size} leases in be's journal, ${lost.length} ACKed leases missing${lost.length ? ` (${lost.slice(0, 3).map(([m, a]) => `${a} to ${m}`).join(', ')})` : ''}`);
  return { acked: acked.size, lost: lost.length };
}

// KILL=0 skips the kill -9 run (default: at 10,000/s when that rate is measured)
const killRate = process.env.KILL === '0' ? 0 : rates.includes(10000) ? 10000 : 0;
let killed;
const results = [];
try {
  ip('netns', 'add', srvNs);
  ip('netns', 'add', cliNs);
  ip('link', 'add', 'eth0', 'netns', srvNs, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', cliNs);
  ip('-n', srvNs, 'addr', 'add', `${serverIp}/14`, 'dev', 'eth0');
  ip('-n', cliNs, 'addr', 'add', `${relayIp}/14`, 'dev', 'eth0');
  for (const ns of [srvNs, cliNs]) {
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  for (let round = 1; round <= rounds; round++) {
    for (const rate of rates) {
      for (const peer of peers) {
        const leases = join(dir, `${peer}-${rate}-${round}`, 'leases');
        rmSync(join(dir, `${peer}-${rate}-${round}`), { recursive: true, force: true });
        execFileSync('mkdir', ['-p', join(dir, `${peer}-${rate}-${round}`)]);
        const proc = await start(peer, leases);
        // `ip netns exec` execs the server, so proc.pid is the server (env, for Kea, execs too)
        const child = spawnSync('pgrep', ['-P', String(proc.pid)], { encoding: 'utf8' }).stdout.trim().split('\n')[0] || proc.pid;
        const cpu0 = cpuTicks(child);
        const full0 = [rcvbufErrors(srvNs), rcvbufErrors(cliNs)];
        const r = perfdhcp(rate);
        const cpu1 = cpuTicks(child);
        const full = [rcvbufErrors(srvNs) - full0[0], rcvbufErrors(cliNs) - full0[1]];
        const userMs = (cpu1.user - cpu0.user) * 10;
        const cpuMs = userMs + (cpu1.sys - cpu0.sys) * 10;
        // the server's peak resident memory over the run (the kernel's high-water mark)
        const status = existsSync(`/proc/${child}/status`) ? readFileSync(`/proc/${child}/status`, 'utf8') : '';
        const peakKiB = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1] ?? NaN);
        await stopProc(proc);
        // be's own count at its stop: datagrams, offers, ACKs, DISCOVERs shed, journal syncs
        const counts = peer === 'be' ? /dhcp (\d+ datagrams: .*)$/m.exec(readFileSync(join(dirname(leases), 'log'), 'utf8'))?.[1] : undefined;
        const stored = storedLeases(peer, leases);
        const cpuPerExchange = r.acks ? (1000 * cpuMs) / r.acks : NaN;
        results.push({ round, peer, offered: rate, ...r, stored, peakKiB, cpuMs, cpuPerExchange });
        // perfdhcp sleeps between sends only below 10,000/s (perfdhcp/basic_scen.cc, BasicScen::run:
        // usleep(1) only when getRate() < 10000): from there on it spins one core by itself, and
        // where it cannot send all it was asked to, the client, not the server, set the rate
        console.log(`${round} ${peer.padEnd(8)} offered ${String(rate).padStart(5)}/s: ${r.rate.toFixed(0).padStart(5)} 4-way/s, ${r.acks}/${r.discovers} ACKed (perfdhcp sent ${r.discovers} of ${rate * period} DISCOVERs asked for), drops ${(100 * r.drop).toFixed(2)}%, ${stored} leases on disk, server CPU ${cpuMs} ms (${userMs} user; ${cpuPerExchange.toFixed(0)} µs per ACKed exchange), perfdhcp CPU ${r.clientMs} ms, peak RSS ${(peakKiB / 1024).toFixed(1)} MiB, load ${loadAverage()}`);
        if (counts) console.log(`  be counted ${counts}`);
        // where datagrams were lost for want of room: the server's receive queue, or perfdhcp's
        console.log(`  dropped by the kernel for a full receive buffer: ${full[0]} at the server, ${full[1]} at perfdhcp`);
      }
    }
  }
  if (killRate && peers.includes('be')) killed = await killRun(killRate);
} finally {
  cleanup();
}

const fmt = (r) => (r ? `${r.rate.toFixed(0).padStart(6)} ${(100 * r.drop).toFixed(1).padStart(5)}% ${r.cpuPerExchange.toFixed(0).padStart(5)}` : '     -      -     -');
// CPU is the server's own (user + system) per ACKed exchange, in microseconds
console.log(`\nround offered ${peers.map((p) => `${p.padStart(6)} 4-way/s drops CPUµs`).join(' ')}  ${peers.filter((p) => p !== 'be').map((p) => `be/${p}`).join(' ')}`);
for (let round = 1; round <= rounds; round++) {
  for (const rate of rates) {
    const row = peers.map((p) => results.find((r) => r.round === round && r.peer === p && r.offered === rate));
    const be = row[peers.indexOf('be')];
    const ratios = peers.map((p, i) => (p === 'be' ? null : be && row[i] ? `${(be.rate / row[i].rate).toFixed(2)}x`.padStart(p.length + 3) : '-'))
      .filter((x) => x !== null);
    console.log(`${String(round).padEnd(5)} ${String(rate).padEnd(7)} ${row.map(fmt).join('        ')}  ${ratios.join(' ')}`);
  }
  const be = results.filter((r) => r.round === round && r.peer === 'be');
  if (!be.length) continue;
  const best = Math.max(...be.map((r) => r.rate));
  const at = (rate) => be.find((r) => r.offered === rate);
  const goals = [];
  if (at(10000)) goals.push(`10,000/s offered: ${at(10000).rate.toFixed(0)}/s, ${(100 * at(10000).drop).toFixed(2)}% drops (goal >= 10,000/s, < 1%): ${at(10000).rate >= 9900 && at(10000).drop < 0.01 ? 'met' : 'NOT met'}`);
  if (at(20000)) goals.push(`20,000/s offered: ${(at(20000).rate / best).toFixed(2)} of the best rate (goal >= 0.90): ${at(20000).rate >= 0.9 * best ? 'met' : 'NOT met'}`);
  if (peers.includes('kea')) {
    const behind = be.filter((b) => { const k = results.find((r) => r.round === round && r.peer === 'kea' && r.offered === b.offered); return k && b.rate < k.rate; });
    goals.push(`ahead of Kea at every rate: ${behind.length ? `NOT met (${behind.map((b) => b.offered).join(', ')})` : 'met'}`);
  }
  if (killed && round === rounds) goals.push(`kill -9 loses no ACKed lease: ${killed.acked && !killed.lost ? 'met' : `NOT met (${killed.lost} of ${killed.acked})`}`);
  console.log(`round ${round} goals: ${goals.join('; ')}`);
}
