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
//     be (transfers on worker threads, one per CPU), tftpd-hpa (in.tftpd -L) and dnsmasq (--port=0
//     --enable-tftp); be once more with its busy polling off (busyPollMicros 0) and once with every
//     transfer on its main thread (workers 0), and each server's CPU time per GiB both ways (from a
//     cgroup per server, so tftpd-hpa's forked children count), and atftp's own CPU per GiB against each (the
//     client shares the machine's cores: one core at that cost caps the server's rate). Each case runs 3 times
//     and the median counts: lock-step TFTP on a small VM is dominated by cross-CPU wake-ups
//     and varies a lot run to run. (tftpd-hpa and dnsmasq do not implement windowsize: they
//     answer lock-step whatever the client asks.)
//  2. Boot storms: 50 and then 100 atftp clients fetch one 16 MiB file at once; every copy is
//     checked byte-identical; aggregate MiB/s of be (also on one thread, and with its worker threads
//     reading their transfer sockets through dgram: BE_TFTP_BATCH=0) against tftpd-hpa, server
//     CPU per GiB and the peak resident memory of each server (tftpd-hpa: its process and the children it forks per
//     transfer), the clients' CPU per GiB and the machine's idle share over the storm (with both
//     cores busy, be's rate against tftpd-hpa's is at most (clients + hpa) / (clients + be) in CPU per
//     GiB), and when the first, the median and the last client finished (the aggregate counts
//     to the last: here the clients share the server's cores, and those that finish early free them).
//  3. One table of the ratios be / tftpd-hpa beside the project's goals (issue: ws1 single >= 1.0x,
//     ws16 single >= 5x, storms of 50 and 100 clients at ws1 >= 1.2x), with CPU per GiB and peak
//     memory of both beside.
// The machine's other load moves every figure: compare be and tftpd-hpa within one run only, and
// run it a few times. BENCH_PREFIX names the namespace, cgroups and scratch directories.
// Prints MiB/s per case and the ratios be/peer. --quick uses 16 MiB and one storm of 20 clients;
// STORM_REPEATS=n runs each storm n times, the servers in turned order each time, and takes the median.
import { spawn, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const quick = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const SINGLE = (quick ? 16 : 64) * MiB;
const STORM_SIZE = 16 * MiB;
const STORMS = quick ? [20] : [50, 100];
const REPEATS = 3;
const stormRepeats = Number(process.env.STORM_REPEATS ?? 1);
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
  const exited = [...children].map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r))));
  for (const c of children) c.kill('SIGTERM');
  await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 3000))]);
  for (const dir of groups) {
    try {
      // its processes have ended; a group can only go once empty
      rmdirSync(dir);
    } catch {
      /* still busy or gone */
    }
  }
  try {
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    /* already gone */
  }
  await rm(work, { recursive: true, force: true });
  await rm(outDir, { recursive: true, force: true });
}
process.on('SIGINT', () => cleanup().then(() => process.exit(130)));

let built = false;
/** Start be's server in its own node process inside the namespace. */
async function startBe(port, options = {}, env = {}) {
  const bundle = join(work, 'tftp.mjs');
  const workerScript = join(work, 'tftp-worker.mjs');
  if (!built) {
    // The library and its worker entry, bundled as build.mjs ships them.
    const { build } = await import('esbuild');
    const common = { bundle: true, platform: 'node', format: 'esm', logLevel: 'warning' };
    await build({ ...common, entryPoints: [join(repo, 'src/net/tftp/index.ts')], outfile: bundle });
    await build({ ...common, entryPoints: [join(repo, 'src/net/tftp/worker.ts')], outfile: workerScript });
    // The bundles load koffi (direct socket calls) at run time, from beside them as dist/ does.
    symlinkSync(join(repo, 'node_modules'), join(work, 'node_modules'));
    built = true;
  }
  const script = `
    const { createTftpServer } = await import(${JSON.stringify(bundle)});
    const s = createTftpServer({ root: ${JSON.stringify(root)}, address: '127.0.0.1', port: ${port}, maxTransfers: 256, workerScript: ${JSON.stringify(workerScript)}, ...${JSON.stringify(options)} });
    await s.start();
    console.log('ready');
    process.stdin.resume();
    process.stdin.on('end', () => s.stop().then(() => process.exit(0)));
  `;
  const child = inNs([process.execPath, '--input-type=module', '-e', script], { env: { ...process.env, ...env } });
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

/**
 * CPU seconds a server has used, its forked children included (tftpd-hpa forks one per transfer
 * and ignores SIGCHLD, so their time never reaches its /proc/PID/stat): each server gets a cgroup
 * of its own (cgroup v2 cpu.stat, else v1 cpuacct), removed at the end.
 */
const groups = [];
function cpuGroup(name, pid) {
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const dir = v2 ? `/sys/fs/cgroup/${prefix}-bench-${name}-${ns}` : `/sys/fs/cgroup/cpuacct/${prefix}-bench-${name}-${ns}`;
  try {
    mkdirSync(dir);
    writeFileSync(join(dir, 'cgroup.procs'), String(pid));
    groups.push(dir);
  } catch {
    return () => cpuSeconds(pid); // no cgroup here: the process itself (be's threads are all in it)
  }
  if (v2) return () => Number(/^usage_usec (\d+)/m.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'))[1]) / 1e6;
  return () => Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8')) / 1e9;
}

/** CPU seconds of a process (/proc/PID/stat: utime, stime) and of the children it waited for (cutime, cstime). */
function cpuTimes(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').map(Number);
  return { own: (f[11] + f[12]) / 100, children: (f[13] + f[14]) / 100 };
}

/** User + system CPU seconds of a process and the children it waited for. */
function cpuSeconds(pid) {
  const t = cpuTimes(pid);
  return t.own + t.children;
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

/** CPU seconds of this process's waited-for children: the atftp clients (`ip netns exec` execs them). */
const clientSeconds = () => cpuTimes('self').children;

/** Idle and total CPU time of the whole machine so far (/proc/stat's first line), in clock ticks. */
function machineTicks() {
  const t = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { idle: t[3] + t[4], total: t.reduce((a, b) => a + b, 0) };
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
    { name: 'be 1 thread', port: 6972, child: await startBe(6972, { workers: 0 }) },
    { name: 'tftpd-hpa', port: 6970, child: await startHpa(6970) },
    { name: 'dnsmasq', port: 69, child: await startDnsmasq() },
    // Storms only: the worker threads read through dgram (src/net/tftp/batch.ts; by default each thread reads its sockets in batches).
    { name: 'be dgram', port: 6973, child: await startBe(6973, {}, { BE_TFTP_BATCH: '0' }), stormOnly: true },
  ];
  for (const s of servers) s.cpu = cpuGroup(s.name.replace(/\W+/g, '-'), s.child.pid);
  let direct = 'no (Node dgram only)';
  try {
    createRequire(join(repo, 'package.json'))('koffi');
    direct = process.platform === 'linux' ? 'yes (sendto; windows as one UDP GSO send)' : 'yes (sendto)';
  } catch {
    /* koffi missing: be falls back to dgram */
  }
  console.log(`be's direct socket calls through koffi: ${direct}; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const byName = (name) => servers.find((x) => x.name === name);

  console.log(`\n1. one ${SINGLE / MiB} MiB transfer, blksize 1468, atftp client (median of ${REPEATS}), MiB/s`);
  console.log(`${'server'.padEnd(12)} ${'ws=1'.padStart(7)} ${'ws=16'.padStart(7)}`);
  const results = {};
  const cpu = {};
  const clientCpu = {};
  const singles = servers.filter((s) => !s.stormOnly);
  for (const ws of [1, 16]) {
    const times = Object.fromEntries(singles.map((s) => [s.name, []]));
    // interleave servers so drift in machine load hits all of them alike
    for (let r = 0; r < REPEATS; r++) {
      for (const s of singles) {
        const cpu0 = s.cpu();
        const client0 = clientSeconds();
        times[s.name].push(await fetchOnce(s.port, 'single.bin', ws, singleSha));
        (cpu[s.name] ??= { 1: 0, 16: 0 })[ws] += s.cpu() - cpu0;
        (clientCpu[s.name] ??= { 1: 0, 16: 0 })[ws] += clientSeconds() - client0;
      }
    }
    for (const s of singles) (results[s.name] ??= {})[ws] = mibs(SINGLE, median(times[s.name]));
  }
  for (const s of singles) console.log(`${s.name.padEnd(12)} ${fmt(results[s.name][1])} ${fmt(results[s.name][16])}`);
  const perGiB = (name, ws, used = cpu) => ((used[name][ws] / REPEATS) * (1024 * MiB)) / SINGLE;
  // atftp shares the machine's cores: one core at its cost per GiB caps what any server reaches with it
  for (const s of singles) {
    const client = (ws) => `${perGiB(s.name, ws, clientCpu).toFixed(2)} s (one core: ${(1024 / perGiB(s.name, ws, clientCpu)).toFixed(0)} MiB/s)`;
    console.log(`${s.name.padEnd(12)} server CPU per GiB sent: ws=1 ${perGiB(s.name, 1).toFixed(2)} s, ws=16 ${perGiB(s.name, 16).toFixed(2)} s; atftp's: ws=1 ${client(1)}, ws=16 ${client(16)}`);
  }
  for (const peer of ['tftpd-hpa', 'dnsmasq']) {
    console.log(`be / ${peer.padEnd(10)} ws=1 ${(results.be[1] / results[peer][1]).toFixed(2)}x   ws=16 ${(results.be[16] / results[peer][16]).toFixed(2)}x`);
  }

  console.log(`\n2. boot storms: N atftp clients fetch ${STORM_SIZE / MiB} MiB at once (blksize 1468), aggregate MiB/s`);
  const stormRun = async (clients, port, ws, server) => {
    const pid = server.child.pid;
    const stop = rssPeak(pid);
    const cpu0 = server.cpu();
    const c0 = clientSeconds();
    const m0 = machineTicks();
    const t0 = process.hrtime.bigint();
    const dests = [];
    // when each client finished, seconds after the start: how evenly the server shared itself out
    const ends = [];
    await Promise.all(
      Array.from({ length: clients }, (_, i) => {
        const dest = join(outDir, `storm-${port}-${ws}-${i}`);
        dests.push(dest);
        return run(['atftp', '-g', '-r', 'storm.bin', '-l', dest, '--option', 'blksize 1468', '--option', `windowsize ${ws}`, '127.0.0.1', String(port)])
          .then(() => ends.push(Number(process.hrtime.bigint() - t0) / 1e9));
      }),
    );
    ends.sort((x, y) => x - y);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpuUsed = server.cpu() - cpu0;
    const clientUsed = clientSeconds() - c0;
    const m1 = machineTicks();
    const peak = stop();
    let identical = 0;
    for (const d of dests) {
      if ((await sha256(d)) === stormSha) identical++;
      await rm(d, { force: true });
    }
    const done = [0, 0.5, 1].map((q) => ends[Math.round(q * (ends.length - 1))].toFixed(1)).join('/');
    const perGiB = (used) => (used * 1024 * MiB) / (STORM_SIZE * clients);
    const idle = (m1.idle - m0.idle) / (m1.total - m0.total);
    return { rate: mibs(STORM_SIZE * clients, seconds), identical, peak, cpuPerGiB: perGiB(cpuUsed), clientPerGiB: perGiB(clientUsed), idle, done };
  };
  const storms = {};
  const idle = Object.fromEntries(servers.map((x) => [x.name, treeRss(x.child.pid)]));
  const stormCases = [['be', 1], ['tftpd-hpa', 1], ['be dgram', 1], ['be 1 thread', 1], ['be', 16]];
  for (const clients of STORMS) {
    // STORM_REPEATS=n runs each storm n times, the servers' order turned each time; the median rate counts
    const runs = {};
    for (let round = 0; round < stormRepeats; round++) {
      for (const [name, ws] of round % 2 ? [...stormCases].reverse() : stormCases) {
        const server = byName(name);
        (runs[`${name}/${ws}`] ??= []).push(await stormRun(clients, server.port, ws, server));
      }
    }
    for (const [name, ws] of stormCases) {
      const all = runs[`${name}/${ws}`];
      const r = [...all].sort((x, y) => x.rate - y.rate)[Math.floor((all.length - 1) / 2)];
      storms[`${name}/${ws}/${clients}`] = r;
      console.log(`${String(clients).padStart(3)} x ${name.padEnd(11)} ws=${String(ws).padEnd(3)} ${fmt(r.rate)} MiB/s   ${r.identical}/${clients} byte-identical   peak RSS ${fmt(r.peak / MiB)} MiB (idle ${(idle[name] / MiB).toFixed(1)} MiB)   CPU ${r.cpuPerGiB.toFixed(2)} s/GiB (clients ${r.clientPerGiB.toFixed(2)}; machine idle ${(100 * r.idle).toFixed(0)}%)   clients done at ${r.done} s (first/median/last)`);
      if (all.length > 1) console.log(`${' '.repeat(18)}each run: ${all.map((x) => fmt(x.rate).trim()).join(', ')} MiB/s`);
      if (all.some((x) => x.identical !== clients)) process.exitCode = 1;
    }
  }

  console.log(`\nload average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  console.log('\n3. be / tftpd-hpa in this run (tftpd-hpa answers lock-step whatever the client asks)');
  const st = (name, ws, n) => storms[`${name}/${ws}/${n}`];
  // [case, be MiB/s, hpa MiB/s, goal, be CPU s/GiB, hpa CPU s/GiB, be peak RSS, hpa peak RSS]
  const rows = [
    ['single, ws=1', results.be[1], results['tftpd-hpa'][1], 1.0, perGiB('be', 1), perGiB('tftpd-hpa', 1)],
    ['single, ws=16', results.be[16], results['tftpd-hpa'][16], 5.0, perGiB('be', 16), perGiB('tftpd-hpa', 16)],
    ...STORMS.map((n) => [`storm ${n}, ws=1`, st('be', 1, n).rate, st('tftpd-hpa', 1, n).rate, 1.2, st('be', 1, n).cpuPerGiB, st('tftpd-hpa', 1, n).cpuPerGiB, st('be', 1, n).peak, st('tftpd-hpa', 1, n).peak]),
    ...STORMS.map((n) => [`storm ${n}, dgram`, st('be dgram', 1, n).rate, st('tftpd-hpa', 1, n).rate, undefined, st('be dgram', 1, n).cpuPerGiB, st('tftpd-hpa', 1, n).cpuPerGiB, st('be dgram', 1, n).peak, st('tftpd-hpa', 1, n).peak]),
    ...STORMS.map((n) => [`storm ${n}, be ws=16`, st('be', 16, n).rate, st('tftpd-hpa', 1, n).rate, undefined, st('be', 16, n).cpuPerGiB, st('tftpd-hpa', 1, n).cpuPerGiB, st('be', 16, n).peak, st('tftpd-hpa', 1, n).peak]),
  ];
  const cell = (x, digits = 1) => (x === undefined ? '-' : x.toFixed(digits)).padStart(7);
  console.log(`${'case'.padEnd(20)} ${'be'.padStart(7)} ${'hpa'.padStart(7)} ${'ratio'.padStart(7)} ${'goal'.padStart(6)}          CPU s/GiB be / hpa   peak RSS MiB be / hpa`);
  for (const [label, ours, theirs, goal, cpuOurs, cpuTheirs, rssOurs, rssTheirs] of rows) {
    const ratio = ours / theirs;
    const verdict = goal === undefined ? '' : ratio >= goal ? 'met' : 'not met';
    const mem = rssOurs === undefined ? `${cell()} / ${cell()}` : `${cell(rssOurs / MiB)} / ${cell(rssTheirs / MiB)}`;
    console.log(`${label.padEnd(20)} ${fmt(ours)} ${fmt(theirs)} ${(ratio.toFixed(2) + 'x').padStart(7)} ${(goal === undefined ? '-' : `${goal.toFixed(1)}x`).padStart(6)} ${verdict.padEnd(8)} ${cell(cpuOurs, 2)} / ${cell(cpuTheirs, 2)}    ${mem}`);
  }
  console.log(`be's memory growth over idle in the storms: ${STORMS.map((n) => `${n} clients ws=1 ${((storms[`be/1/${n}`].peak - idle.be) / MiB).toFixed(1)} MiB, ws=16 ${((storms[`be/16/${n}`].peak - idle.be) / MiB).toFixed(1)} MiB`).join('; ')}`);

  for (const s of servers.filter((x) => x.name.startsWith('be'))) s.child.stdin.end();
} catch (e) {
  console.error(`bench/tftp: ${e.message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
