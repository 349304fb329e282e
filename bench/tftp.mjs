#!/usr/bin/env node
// TFTP benchmark: be's TFTP server against tftpd-hpa and dnsmasq, measured in the same run.
//
//   Run (as root, from the repository):   node bench/tftp.mjs [--quick]
//   Needs the Debian packages:            atftp tftpd-hpa dnsmasq   (apt-get install atftp tftpd-hpa dnsmasq)
//   and the dev dependency esbuild (npm ci).
//
// Everything runs inside a network namespace the script creates (dnsmasq's TFTP port is always
// 69), on its loopback, and is removed at the end. Servers run in the foreground as child
// processes; nothing is installed or started as a service.
//
//  1. One 64 MiB transfer at blksize 1468 with windowsize 1 and 16, atftp as the client, against
//     be, tftpd-hpa (in.tftpd -L) and dnsmasq (--port=0 --enable-tftp); be once more with its busy
//     polling off (busyPollMicros 0), and be's server CPU time per GiB both ways. Each case runs 3 times
//     and the median counts: lock-step TFTP on a small VM is dominated by cross-CPU wake-ups
//     and varies a lot run to run. (tftpd-hpa and dnsmasq do not implement windowsize: they
//     answer lock-step whatever the client asks.)
//  2. Boot storms: 50 and then 100 atftp clients fetch one 16 MiB file at once; every copy is
//     checked byte-identical; aggregate MiB/s of be against tftpd-hpa, server CPU per GiB and the
//     peak resident memory of each server (tftpd-hpa: its process and the children it forks per
//     transfer).
//  3. One table of the ratios be / tftpd-hpa beside the project's goals (issue: ws1 single >= 1.0x,
//     ws16 single >= 5x, storms of 50 and 100 clients at ws1 >= 1.2x).
// Prints MiB/s per case and the ratios be/peer. --quick uses 16 MiB and one storm of 20 clients.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const quick = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const SINGLE = (quick ? 16 : 64) * MiB;
const STORM_SIZE = 16 * MiB;
const STORMS = quick ? [20] : [50, 100];
const REPEATS = 3;
const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

function need(program, pkg) {
  try {
    execFileSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore', env: { PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  } catch {
    console.error(`bench/tftp: ${program} not found: apt-get install ${pkg}`);
    process.exit(1);
  }
}
need('atftp', 'atftp');
need('in.tftpd', 'tftpd-hpa');
need('dnsmasq', 'dnsmasq');
need('ip', 'iproute2');
if (process.getuid?.() !== 0) {
  console.error('bench/tftp: run as root (it creates a network namespace)');
  process.exit(1);
}

// BENCH_PREFIX names the namespace and scratch directories (several runs on one machine).
const prefix = process.env.BENCH_PREFIX ?? 'betftp';
const ns = `${prefix}bench${randomBytes(3).toString('hex')}`;
const work = await mkdtemp(join(tmpdir(), `${prefix}-bench-`));
const root = join(work, 'root');
const outDir = await mkdtemp(`/dev/shm/${prefix}-bench-out-`).catch(() => mkdtemp(join(tmpdir(), `${prefix}-bench-out-`)));
const children = new Set();

function inNs(argv, opts = {}) {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function run(argv) {
  return new Promise((resolve, reject) => {
    const child = inNs(argv);
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${argv[0]} exited ${code}: ${err.trim()}`))));
  });
}

async function sha256(path) {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk);
  return h.digest('hex');
}

async function cleanup() {
  for (const c of children) c.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 200));
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  await rm(work, { recursive: true, force: true });
  await rm(outDir, { recursive: true, force: true });
}
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

/** Start be's server in its own node process inside the namespace. */
async function startBe(port, options = {}) {
  const { build } = await import('esbuild');
  const bundle = join(work, 'tftp.mjs');
  await build({ entryPoints: [join(repo, 'src/net/tftp/index.ts')], bundle: true, platform: 'node', format: 'esm', outfile: bundle, logLevel: 'warning' });
  const script = `
    const { createTftpServer } = await import(${JSON.stringify(bundle)});
    const s = createTftpServer({ root: ${JSON.stringify(root)}, address: '127.0.0.1', port: ${port}, maxTransfers: 256, ...${JSON.stringify(options)} });
    await s.start();
    console.log('ready');
    process.stdin.resume();
    process.stdin.on('end', () => s.stop().then(() => process.exit(0)));
  `;
  const child = inNs([process.execPath, '--input-type=module', '-e', script]);
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (c) => reject(new Error(`be tftp server exited ${c}`)));
  });
  return child;
}

async function startHpa(port) {
  const child = inNs(['in.tftpd', '-L', '-u', 'nobody', '-s', root, '-a', `127.0.0.1:${port}`]);
  await new Promise((r) => setTimeout(r, 300));
  if (child.exitCode !== null) throw new Error('in.tftpd did not start');
  return child;
}

async function startDnsmasq() {
  const child = inNs([
    'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--port=0', '--enable-tftp', `--tftp-root=${root}`,
    '--listen-address=127.0.0.1', '--bind-interfaces', '--pid-file=', '--log-facility=/dev/null', '--tftp-max=200',
  ]);
  await new Promise((r) => setTimeout(r, 300));
  if (child.exitCode !== null) throw new Error('dnsmasq did not start');
  return child;
}

let outN = 0;
async function fetchOnce(port, file, windowsize, expectSha) {
  const dest = join(outDir, `o${outN++}`);
  const t0 = process.hrtime.bigint();
  await run(['atftp', '-g', '-r', file, '-l', dest, '--option', 'blksize 1468', '--option', `windowsize ${windowsize}`, '127.0.0.1', String(port)]);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const same = (await sha256(dest)) === expectSha;
  await rm(dest, { force: true });
  if (!same) throw new Error(`port ${port}: ${file} arrived corrupted`);
  return seconds;
}

/** User + system CPU seconds of a process (be's servers run in the process `ip netns exec` became). */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process and all its descendants (tftpd-hpa forks one per transfer), bytes. */
function treeRss(pid) {
  let total = 0;
  const walk = (p) => {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      total += Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        for (const c of readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) walk(c);
      }
    } catch {
      // the process ended between two reads
    }
  };
  walk(pid);
  return total;
}

/** Sample treeRss(pid) every 20 ms until stop() is called; returns the peak. */
function rssPeak(pid) {
  let peak = treeRss(pid);
  const timer = setInterval(() => (peak = Math.max(peak, treeRss(pid))), 20);
  return () => {
    clearInterval(timer);
    return Math.max(peak, treeRss(pid));
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mibs = (bytes, s) => bytes / MiB / s;
const fmt = (x) => x.toFixed(1).padStart(7);

try {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // in.tftpd resolves its bind address with AI_ADDRCONFIG, which wants one non-127/8 IPv4 address.
  execFileSync('ip', ['-n', ns, 'addr', 'add', '192.0.2.1/32', 'dev', 'lo']);
  execFileSync('mkdir', ['-p', root]);
  await chmod(work, 0o755);
  await chmod(root, 0o755);
  const single = randomBytes(SINGLE);
  const storm = randomBytes(STORM_SIZE);
  await writeFile(join(root, 'single.bin'), single, { mode: 0o644 });
  await writeFile(join(root, 'storm.bin'), storm, { mode: 0o644 });
  const singleSha = createHash('sha256').update(single).digest('hex');
  const stormSha = createHash('sha256').update(storm).digest('hex');

  const servers = [
    { name: 'be', port: 6969, child: await startBe(6969) },
    { name: 'be no-poll', port: 6971, child: await startBe(6971, { busyPollMicros: 0 }) },
    { name: 'tftpd-hpa', port: 6970, child: await startHpa(6970) },
    { name: 'dnsmasq', port: 69, child: await startDnsmasq() },
  ];

  console.log(`\n1. one ${SINGLE / MiB} MiB transfer, blksize 1468, atftp client (median of ${REPEATS}), MiB/s`);
  console.log(`${'server'.padEnd(12)} ${'ws=1'.padStart(7)} ${'ws=16'.padStart(7)}`);
  const results = {};
  const cpu = {};
  for (const ws of [1, 16]) {
    const times = Object.fromEntries(servers.map((s) => [s.name, []]));
    // interleave servers so drift in machine load hits all of them alike
    for (let r = 0; r < REPEATS; r++) {
      for (const s of servers) {
        const cpu0 = cpuSeconds(s.child.pid);
        times[s.name].push(await fetchOnce(s.port, 'single.bin', ws, singleSha));
        (cpu[s.name] ??= { 1: 0, 16: 0 })[ws] += cpuSeconds(s.child.pid) - cpu0;
      }
    }
    for (const s of servers) (results[s.name] ??= {})[ws] = mibs(SINGLE, median(times[s.name]));
  }
  for (const s of servers) console.log(`${s.name.padEnd(12)} ${fmt(results[s.name][1])} ${fmt(results[s.name][16])}`);
  const perGiB = (name, ws) => ((cpu[name][ws] / REPEATS) * (1024 * MiB)) / SINGLE;
  for (const name of ['be', 'be no-poll']) {
    console.log(`${name} server CPU per GiB sent: ws=1 ${perGiB(name, 1).toFixed(2)} s, ws=16 ${perGiB(name, 16).toFixed(2)} s`);
  }
  for (const peer of ['tftpd-hpa', 'dnsmasq']) {
    console.log(`be / ${peer.padEnd(10)} ws=1 ${(results.be[1] / results[peer][1]).toFixed(2)}x   ws=16 ${(results.be[16] / results[peer][16]).toFixed(2)}x`);
  }

  console.log(`\n2. boot storms: N atftp clients fetch ${STORM_SIZE / MiB} MiB at once (blksize 1468), aggregate MiB/s`);
  const stormRun = async (clients, port, ws, pid) => {
    const stop = rssPeak(pid);
    const cpu0 = cpuSeconds(pid);
    const t0 = process.hrtime.bigint();
    const dests = [];
    await Promise.all(
      Array.from({ length: clients }, (_, i) => {
        const dest = join(outDir, `storm-${port}-${ws}-${i}`);
        dests.push(dest);
        return run(['atftp', '-g', '-r', 'storm.bin', '-l', dest, '--option', 'blksize 1468', '--option', `windowsize ${ws}`, '127.0.0.1', String(port)]);
      }),
    );
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuUsed = cpuSeconds(pid) - cpu0;
    const peak = stop();
    let identical = 0;
    for (const d of dests) {
      if ((await sha256(d)) === stormSha) identical++;
      await rm(d, { force: true });
    }
    return { rate: mibs(STORM_SIZE * clients, seconds), identical, peak, cpuPerGiB: (cpuUsed * 1024 * MiB) / (STORM_SIZE * clients) };
  };
  const storms = {};
  const idle = Object.fromEntries(servers.map((x) => [x.name, treeRss(x.child.pid)]));
  for (const clients of STORMS) {
    for (const [name, port, ws] of [['be', 6969, 1], ['tftpd-hpa', 6970, 1], ['be', 6969, 16]]) {
      const r = await stormRun(clients, port, ws, servers.find((x) => x.name === name).child.pid);
      storms[`${name}/${ws}/${clients}`] = r;
      // tftpd-hpa's CPU is spent in the children it forks, which /proc/PID/stat does not count.
      const cpuText = name === 'be' ? `   CPU ${r.cpuPerGiB.toFixed(2)} s/GiB` : '';
      console.log(`${String(clients).padStart(3)} x ${name.padEnd(10)} ws=${String(ws).padEnd(3)} ${fmt(r.rate)} MiB/s   ${r.identical}/${clients} byte-identical   peak RSS ${fmt(r.peak / MiB)} MiB (idle ${(idle[name] / MiB).toFixed(1)} MiB)${cpuText}`);
      if (r.identical !== clients) process.exitCode = 1;
    }
  }

  console.log('\n3. be / tftpd-hpa in this run (tftpd-hpa answers lock-step whatever the client asks)');
  const rows = [
    ['single, ws=1', results.be[1], results['tftpd-hpa'][1], 1.0],
    ['single, ws=16', results.be[16], results['tftpd-hpa'][16], 5.0],
    ...STORMS.map((n) => [`storm ${n}, ws=1`, storms[`be/1/${n}`].rate, storms[`tftpd-hpa/1/${n}`].rate, 1.2]),
    ...STORMS.map((n) => [`storm ${n}, be ws=16`, storms[`be/16/${n}`].rate, storms[`tftpd-hpa/1/${n}`].rate, undefined]),
  ];
  console.log(`${'case'.padEnd(20)} ${'be'.padStart(7)} ${'hpa'.padStart(7)} ${'ratio'.padStart(7)} ${'goal'.padStart(6)}`);
  for (const [label, ours, theirs, goal] of rows) {
    const ratio = ours / theirs;
    const verdict = goal === undefined ? '' : ratio >= goal ? '  met' : '  not met';
    console.log(`${label.padEnd(20)} ${fmt(ours)} ${fmt(theirs)} ${(ratio.toFixed(2) + 'x').padStart(7)} ${(goal === undefined ? '-' : `${goal.toFixed(1)}x`).padStart(6)}${verdict}`);
  }
  console.log(`be's memory growth over idle in the storms: ${STORMS.map((n) => `${n} clients ws=1 ${((storms[`be/1/${n}`].peak - idle.be) / MiB).toFixed(1)} MiB, ws=16 ${((storms[`be/16/${n}`].peak - idle.be) / MiB).toFixed(1)} MiB`).join('; ')}`);

  for (const s of servers.filter((x) => x.name.startsWith('be'))) s.child.stdin.end();
} catch (e) {
  console.error(`bench/tftp: ${e.message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
