import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { startBeanstalkd, type Beanstalkd } from '../helpers/beanstalkd.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { be, beOk, BE_BIN } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { makeFixture, testScript, RELEASES, FIRST_BAD, UNTESTABLE, expectedVerdict, manpages, type Fixture } from './hunt-fixture.js';
import { decodePng, countColours } from './hunt-png.js';

let pool: TestPool;
let fx: Fixture;
let common: string[];

interface JsonReport {
  releases: Array<{ release: string; verdict: string; metrics: Record<string, { median: number; n: number }>; runs: Array<{ startedAt: string; worker?: string }> }>;
}

async function jsonReport(state: string): Promise<JsonReport> {
  return JSON.parse(await beOk(['hunt', 'report', '--state', state, '--format', 'json']));
}

async function stateFile(state: string) {
  return JSON.parse(await readFile(join(state, 'hunt.json'), 'utf8'));
}

beforeAll(async () => {
  pool = await makeTestPool('768M');
  fx = await makeFixture();
  common = ['-R', pool.root];
}, 120_000);

afterAll(async () => {
  await pool?.destroy();
  await fx?.cleanup();
}, 60_000);

const installFlags = () => ['-p', fx.mirror, '--sets', 'base', '--cache', join(fx.dir, 'cache')];

describe('be hunt run --method chroot on zfs-fuse BEs', () => {
  let state: string;

  it('gives each release its verdict and metric, installing each release once', async () => {
    state = join(fx.dir, 'run');
    const r = await be([...common, 'hunt', 'run', '--releases', `${RELEASES[0]}..${RELEASES[RELEASES.length - 1]}`, '--test', await fx.test(), '--method', 'chroot', '--jobs', '2', '--state', state, ...installFlags()]);
    expect(r.stderr).not.toMatch(/aborted|could not/);
    expect(r.exitCode, r.stderr).toBe(0);
    for (const rel of RELEASES) expect(r.stdout).toMatch(new RegExp(`^${rel.replace('.', '\\.')}\\s+${expectedVerdict(rel)}\\s+1\\s+\\S+\\s+${manpages(rel)}$`, 'm'));
    expect(r.stdout).toContain('7 releases: 4 good, 2 bad, 1 skip');
    const report = await jsonReport(state);
    expect(report.releases.map((x) => [x.release, x.verdict, x.metrics.manpages.median])).toEqual(RELEASES.map((rel) => [rel, expectedVerdict(rel), manpages(rel)]));
    // Every release BE holds its @installed snapshot and no run clone is left.
    const names = (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', pool.root])).stdout.split('\n');
    for (const rel of RELEASES) expect(names).toContain(`${pool.root}/hunt-${rel}@installed`);
    expect(names.filter((n) => n.includes('.run'))).toEqual([]);
    const log = await readFile(join(state, 'logs', FIRST_BAD, 'run-1.log'), 'utf8');
    expect(log).toContain(`feature broken in ${FIRST_BAD}`);
  }, 180_000);

  it('makes the next run\'s clone while the current test runs, and destroys each clone after its run', async () => {
    const releases = RELEASES.slice(0, 3);
    // installed first: a release is cloned ahead only once it is installed (nothing is installed ahead)
    await beOk([...common, 'hunt', 'run', '--releases', releases.join(','), '--test', await fx.test(), '--state', join(fx.dir, 'pipelined-installs'), ...installFlags()]);
    const r = await be(['-v', ...common, 'hunt', 'run', '--releases', releases.join(','), '--test', await fx.test(1), '--state', join(fx.dir, 'pipelined'), ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    const lines = r.stderr.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const esc = (x: string) => x.replace(/\./g, '\\.');
    expect(lines.filter((l) => /^\+ chroot \S+ \/var\/tmp\/be-hunt\/test1\.sh$/.test(l))).toHaveLength(releases.length);
    for (let i = 0; i + 1 < releases.length; i++) {
      // release i+1 is cloned before release i's clone is destroyed (after its test): the next run
      // does not wait for its clone
      const nextClone = at(new RegExp(`^\\+ zfs clone .* ${esc(pool.root)}/hunt-${esc(releases[i + 1])}@installed `));
      const thisDestroy = at(new RegExp(`^\\+ zfs destroy -r ${esc(pool.root)}/hunt-${esc(releases[i])}\\.run1-`));
      expect(nextClone).toBeGreaterThan(-1);
      expect(thisDestroy).toBeGreaterThan(nextClone);
    }
    const names = (await execa('zfs', ['list', '-H', '-o', 'name', '-r', pool.root])).stdout.split('\n');
    expect(names.filter((n) => n.includes('.run'))).toEqual([]);
  }, 120_000);

  it('a second hunt clones the installed releases instead of installing again', async () => {
    const again = join(fx.dir, 'again');
    await beOk([...common, 'hunt', 'run', '--releases', RELEASES.join(','), '--test', await fx.test(), '--state', again, ...installFlags()]);
    const s = await stateFile(again);
    expect(Object.values(s.prepared).map((p) => (p as { installed: boolean }).installed)).toEqual(RELEASES.map(() => false));
    const report = await jsonReport(again);
    expect(report.releases.map((x) => x.verdict), JSON.stringify(report.releases.map((x) => x.runs))).toEqual(RELEASES.map(expectedVerdict));
  }, 120_000);

  it('reports as JUnit XML and as one self-contained HTML page that Chromium draws', async () => {
    const junit = await beOk(['hunt', 'report', '--state', state, '--format', 'junit']);
    expect(junit).toMatch(/<testsuite [^>]*tests="7" failures="2" errors="0" skipped="1"/);
    expect(junit).toContain(`name="${FIRST_BAD}"`);
    const html = join(fx.dir, 'report.html');
    await beOk(['hunt', 'report', '--state', state, '--format', 'html', '--out', html]);
    const text = await readFile(html, 'utf8');
    expect(text).not.toMatch(/(src|href)="(https?:)?\/\//);
    const profile = await mkdtemp(join(tmpdir(), 'be-chromium-'));
    const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', `--user-data-dir=${profile}`];
    try {
      const dom = await execa('chromium', [...flags, '--dump-dom', `file://${html}`], { timeout: 60_000 });
      const cells = [...dom.stdout.matchAll(/<g class="release" data-release="([^"]+)" data-verdict="([a-z]+)">/g)].map((m) => [m[1], m[2]]);
      expect(cells).toEqual(RELEASES.map((rel) => [rel, expectedVerdict(rel)]));
      expect(dom.stdout).toMatch(/<svg class="metric" data-metric="manpages"/);
      expect((dom.stdout.match(/<circle /g) ?? []).length).toBe(RELEASES.length);
      const shot = join(fx.dir, 'report.png');
      await execa('chromium', [...flags, `--screenshot=${shot}`, '--window-size=1200,900', `file://${html}`], { timeout: 60_000 });
      expect((await stat(shot)).size).toBeGreaterThan(10_000);
      const counts = countColours(decodePng(await readFile(shot)), { good: '#2e9e44', bad: '#d0312d', skip: '#a0a0a0', line: '#1f5fbf' }, 12);
      // Four green, two red and one grey cell in the timeline; the metric line in blue.
      expect(counts.good).toBeGreaterThan(4 * 60 * 20);
      expect(counts.bad).toBeGreaterThan(2 * 60 * 20);
      expect(counts.skip).toBeGreaterThan(60 * 20);
      expect(counts.line).toBeGreaterThan(500);
    } finally {
      await rm(profile, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('be -n hunt run', () => {
  it('prints the hunt it would run as a script that, run by sh, gives the live verdicts and leaves nothing behind', async () => {
    // a BE root of its own: nothing installed yet, so the plan installs, snapshots, clones and runs
    const root = `${pool.pool}/PLAN`;
    const releases = [RELEASES[0], UNTESTABLE, FIRST_BAD];
    const datasets = async () => (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', pool.pool])).stdout;
    const mounts = async () => (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes(pool.altroot));
    const before = await datasets();
    const plan = await be(['-n', '-R', root, 'hunt', 'run', '--releases', releases.join(','), '--runs', '2', '--test', await fx.test(), '--method', 'chroot', ...installFlags()]);
    expect(plan.exitCode, plan.stderr).toBe(0);
    // printing it changed nothing and left no state
    expect(await datasets()).toBe(before);
    expect(plan.stdout).not.toMatch(/hunt\.json/);
    await execa('sh', ['-n'], { input: plan.stdout });
    // what a live run gets: its environment, proc and dev, an owner on each clone, mounts under the altroot
    expect(plan.stdout).toContain(`BE_RELEASE=${FIRST_BAD} BE_RUN=2 BE_HUNT=run-`);
    expect(plan.stdout).toMatch(/HOME=\/root/);
    expect(plan.stdout).toMatch(/^mount -t proc proc /m);
    expect(plan.stdout).toMatch(/^zfs clone .*-o be:hunt-owner=/m);
    expect(plan.stdout).not.toMatch(/^be /m);
    const ran = await execa('sh', ['-c', plan.stdout], { reject: false });
    expect(ran.exitCode, ran.stderr).toBe(0);
    const verdicts = ran.stdout.split('\n').filter((l) => / run \d: /.test(l)).map((l) => l.replace(/ \(exit \d+\)$/, '')).sort();
    const live = await be(['-R', `${pool.pool}/LIVE`, 'hunt', 'run', '--releases', releases.join(','), '--runs', '2', '--test', await fx.test(), '--method', 'chroot', '--state', join(fx.dir, 'live-of-plan'), ...installFlags()]);
    expect(live.exitCode, live.stderr).toBe(0);
    const liveVerdicts = (await jsonReport(join(fx.dir, 'live-of-plan'))).releases.flatMap((r) => r.runs.map((_, n) => `${r.release} run ${n + 1}: ${r.verdict}`)).sort();
    expect(verdicts).toEqual(liveVerdicts);
    expect(verdicts).toEqual(releases.flatMap((r) => [1, 2].map((n) => `${r} run ${n}: ${expectedVerdict(r)}`)).sort());
    expect(ran.stdout).toContain(`BE-METRIC manpages=${manpages(FIRST_BAD)}`);
    // the script's releases are installed and snapshotted; no clone, mount or mount directory is left
    const after = (await datasets()).split('\n');
    for (const r of releases) expect(after).toContain(`${root}/hunt-${r}@installed`);
    expect(after.filter((n) => n.includes('.run'))).toEqual([]);
    expect(await mounts()).toEqual([]);
    expect((await readdir(pool.altroot)).filter((n) => n.startsWith('be_mount.'))).toEqual([]);
  }, 240_000);
});

describe('be -n hunt bisect', () => {
  it('prints the bisect as a script that, run by sh, tests what the live bisect tests, gives its verdicts and answer, and leaves nothing behind', async () => {
    const root = `${pool.pool}/PLANB`;
    const state = join(fx.dir, 'live-of-bisect-plan');
    const flaky = RELEASES[RELEASES.indexOf(FIRST_BAD) - 1];
    // the fixture's test, but its second run in the release before the first bad one fails
    const test = join(fx.dir, 'flaky.sh');
    const lines = testScript().split('\n');
    lines.splice(4, 0, `if [ "$BE_RELEASE" = ${flaky} ] && [ "$BE_RUN" = 2 ]; then echo "flaky in $BE_RELEASE"; exit 1; fi`);
    await writeFile(test, lines.join('\n'), { mode: 0o755 });
    const args = ['hunt', 'bisect', '--good', RELEASES[0], '--bad', RELEASES[RELEASES.length - 1], '--runs', '2', '--flaky', 'skip', '--test', test, '--method', 'chroot', ...installFlags()];
    const datasets = async () => (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', pool.pool])).stdout;
    const mounts = async () => (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes(pool.altroot));
    const before = await datasets();
    const plan = await be(['-n', '-R', root, ...args]);
    expect(plan.exitCode, plan.stderr).toBe(0);
    // printing it changed nothing and kept no state
    expect(await datasets()).toBe(before);
    await execa('sh', ['-n'], { input: plan.stdout });
    expect(plan.stdout).not.toMatch(/^be /m);
    const ran = await execa('sh', ['-c', plan.stdout], { reject: false });
    expect(ran.exitCode, ran.stderr).toBe(0);
    const out = ran.stdout.split('\n');
    const live = await be(['-R', `${pool.pool}/LIVEB`, ...args, '--state', state]);
    expect(live.exitCode, live.stderr).toBe(0);
    const s = await stateFile(state);
    expect(existsSync(join('/var/db/be/hunts', s.id))).toBe(false);
    // the same steps, the same runs with the same verdicts, the same answer
    const steps = (text: string) => text.split('\n').filter((l) => l.startsWith('bisect: '));
    expect(steps(ran.stdout)).toEqual(steps(live.stderr));
    expect(steps(ran.stdout)).toHaveLength(4);
    const verdicts = out.filter((l) => /^\S+ run \d: /.test(l)).map((l) => l.replace(/ \(exit \d+\)$/, ''));
    expect(verdicts).toEqual(s.runs.map((r: { release: string; run: number; verdict: string }) => `${r.release} run ${r.run}: ${r.verdict}`));
    expect(verdicts).toContain(`${flaky} run 2: bad`);
    const answer = out.slice(out.findIndex((l) => l.startsWith('be hunt bisect: ')));
    expect(answer).toEqual(live.stdout.trimEnd().split('\n').filter((l) => !l.startsWith('command:')));
    expect(answer[0]).toBe(`be hunt bisect: the first bad release is one of ${UNTESTABLE} ${flaky} ${FIRST_BAD}`);
    expect(answer).toContain(`flaky:          ${flaky} (1 of 2 bad), counted as skip`);
    // only the releases it tested were installed; no clone, mount or mount directory is left
    const after = (await datasets()).split('\n');
    const tested = [...new Set(s.runs.map((r: { release: string }) => r.release))];
    for (const r of RELEASES) expect(after.includes(`${root}/hunt-${r}@installed`), r).toBe(tested.includes(r));
    expect(after.filter((n) => n.includes('.run'))).toEqual([]);
    expect(await mounts()).toEqual([]);
    expect((await readdir(pool.altroot)).filter((n) => n.startsWith('be_mount.'))).toEqual([]);
  }, 300_000);

  it('refuses what a printed bisect cannot do, in one line, changing nothing', async () => {
    const args = ['-n', ...common, 'hunt', 'bisect', '--good', RELEASES[0], '--bad', RELEASES[RELEASES.length - 1], '--test', await fx.test(), ...installFlags()];
    const metric = await be([...args, '--metric', 'manpages']);
    expect([metric.exitCode, metric.stdout, metric.stderr.trimEnd().split('\n').length]).toEqual([2, '', 1]);
    expect(metric.stderr).toMatch(/^be: --metric: a printed bisect cannot /);
    // a release it cannot plan (not on the mirror) is named, and nothing is printed or made
    const before = (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', pool.pool])).stdout;
    const missing = await be([...args, '--releases', `${RELEASES[0]},13.9,${RELEASES[RELEASES.length - 1]}`]);
    expect([missing.exitCode, missing.stdout, missing.stderr.trimEnd().split('\n').length]).toEqual([1, '', 1]);
    expect(missing.stderr).toMatch(/^be: cannot plan 13\.9 run 1: /);
    expect((await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', pool.pool])).stdout).toBe(before);
  });
});

describe('be hunt bisect', () => {
  it(`finds ${FIRST_BAD} within ceil(log2 n) + skips runs and prints a bug-report block`, async () => {
    const state = join(fx.dir, 'bisect');
    const good = RELEASES[0];
    const bad = RELEASES[RELEASES.length - 1];
    const r = await be([...common, 'hunt', 'bisect', '--good', good, '--bad', bad, '--test', await fx.test(), '--method', 'chroot', '--state', state, ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`be hunt bisect: ${FIRST_BAD} is the first bad release`);
    expect(r.stdout).toMatch(new RegExp(`range searched: +${good} \\(good\\) \\.\\. ${bad} \\(bad\\), ${RELEASES.length} releases`));
    expect(r.stdout).toMatch(new RegExp(`last good: +${RELEASES[RELEASES.indexOf(FIRST_BAD) - 1].replace('.', '\\.')}`));
    expect(r.stdout).toMatch(/command: +be -R \S+ hunt bisect --good/);
    expect(r.stdout).toMatch(/be version: +\d+\.\d+\.\d+/);
    // Count the runs from the logs kept beside the state.
    const runLogs = (await readdir(join(state, 'logs'), { recursive: true })).filter((f) => /run-\d+\.log$/.test(String(f)));
    const s = await stateFile(state);
    const skips = s.runs.filter((x: { verdict: string }) => x.verdict === 'skip').length;
    expect(runLogs.length).toBe(s.runs.length);
    expect(runLogs.length).toBeLessThanOrEqual(Math.ceil(Math.log2(RELEASES.length)) + skips);
    expect(s.runs.map((x: { release: string }) => x.release)).toContain(UNTESTABLE);
  }, 120_000);
});

describe('a run that outlives --timeout', () => {
  it('is aborted with the reason, and retried when the hunt is run again', async () => {
    const state = join(fx.dir, 'timeout');
    const args = [...common, 'hunt', 'run', '--releases', RELEASES[0], '--test', await fx.test(3, 'sleepy.sh'), '--timeout', '1s', '--state', state, ...installFlags()];
    const r = await be(args);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${RELEASES[0].replace('.', '\\.')}\\s+aborted \\(timed out after 1s\\)`, 'm'));
    expect(r.stdout).toContain('1 releases: 1 aborted');
    const again = await be(args);
    expect(again.stderr).toMatch(/: aborted: timed out after 1s/);
  }, 60_000);
});

/** Wait (up to a minute) until the hunt in STATE has recorded N runs. */
async function runsRecorded(state: string, n: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const s = existsSync(join(state, 'hunt.json')) ? await stateFile(state).catch(() => undefined) : undefined;
    if (s && s.runs.length >= n) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('an interrupted hunt', () => {
  it('stops on Ctrl-C after the runs in progress, keeps what finished and leaves no clone', async () => {
    const state = join(fx.dir, 'sigint');
    const args = [...common, 'hunt', 'run', '--releases', RELEASES.slice(0, 4).join(','), '--test', await fx.test(1, 'slow.sh'), '--state', state, ...installFlags()];
    const p = execa(BE_BIN, args, { reject: false });
    await runsRecorded(state, 1);
    p.kill('SIGINT');
    const r = await p;
    expect(r.exitCode).toBe(130);
    expect(r.stderr).toContain(`be: interrupted; run the same command again to resume (state in ${state})`);
    const s = await stateFile(state);
    expect(s.runs.length).toBeGreaterThanOrEqual(1);
    expect(s.runs.length).toBeLessThan(4);
    const names = (await execa('zfs', ['list', '-H', '-o', 'name', '-r', pool.root])).stdout.split('\n');
    expect(names.filter((n) => n.includes('.run'))).toEqual([]);
  }, 60_000);

  it('resumes without repeating the runs that finished', async () => {
    const state = join(fx.dir, 'killed');
    const args = [...common, 'hunt', 'run', '--releases', RELEASES.join(','), '--test', await fx.test(1, 'slow.sh'), '--state', state, ...installFlags()];
    const first = execa(BE_BIN, args, { reject: false });
    // Wait until three runs are recorded, then kill -9 the be process.
    await runsRecorded(state, 3);
    first.kill('SIGKILL');
    await first;
    const before = await stateFile(state);
    const done = before.runs.map((x: { release: string; startedAt: string }) => [x.release, x.startedAt]);
    expect(done.length).toBeGreaterThanOrEqual(3);
    expect(done.length).toBeLessThan(RELEASES.length);
    const second = await be(args);
    expect(second.exitCode, second.stderr).toBe(0);
    const ran = second.stderr.split('\n').filter((l) => /^\d+\.\d+: /.test(l)).map((l) => l.split(':')[0]);
    expect(ran.sort()).toEqual(RELEASES.filter((rel) => !done.some(([d]: string[]) => d === rel)).sort());
    const after = await stateFile(state);
    for (const [rel, started] of done) expect(after.runs.find((x: { release: string }) => x.release === rel).startedAt).toBe(started);
    expect((await jsonReport(state)).releases.map((x) => x.verdict)).toEqual(RELEASES.map(expectedVerdict));
    // The clone the killed run left behind is gone.
    const names = (await execa('zfs', ['list', '-H', '-o', 'name', '-r', pool.root])).stdout.split('\n');
    expect(names.filter((n) => n.includes('.run'))).toEqual([]);
  }, 180_000);
});

describe('many hosts through beanstalkd', () => {
  let broker: Beanstalkd | undefined;
  let address = '';
  const workers: ResultPromise[] = [];

  beforeAll(async () => {
    broker = await startBeanstalkd();
    address = broker.address;
  });

  afterAll(async () => {
    for (const w of workers) w.kill('SIGKILL');
    await Promise.all(workers.map((w) => w.catch(() => {})));
    await broker?.stop();
  });

  function startWorker(tube: string): ResultPromise & { lines: string[] } {
    const w = execa(BE_BIN, [...common, 'worker', '--broker', address, '--tube', tube, '--state', join(fx.dir, `worker-${workers.length}`)], { reject: false }) as ResultPromise & { lines: string[] };
    w.lines = [];
    w.stderr?.on('data', (b: Buffer) => w.lines.push(...b.toString().split('\n').filter(Boolean)));
    workers.push(w);
    return w;
  }

  it('two workers give the same report as a local run', async () => {
    const tube = `hunt-${Math.random().toString(36).slice(2, 8)}`;
    const a = startWorker(tube);
    const b = startWorker(tube);
    const state = join(fx.dir, 'brokered');
    const r = await be([...common, 'hunt', 'run', '--broker', address, '--tube', tube, '--releases', RELEASES.join(','), '--test', await fx.test(), '--state', state, ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    const local = await jsonReport(join(fx.dir, 'run'));
    const remote = await jsonReport(state);
    expect(remote.releases.map((x) => [x.release, x.verdict, x.metrics])).toEqual(local.releases.map((x) => [x.release, x.verdict, x.metrics]));
    expect(new Set(remote.releases.map((x) => x.runs[0].worker)).size).toBeGreaterThanOrEqual(1);
    const done = [...a.lines, ...b.lines].filter((l) => /: done /.test(l));
    expect(done.length).toBe(RELEASES.length);
    a.kill('SIGKILL');
    b.kill('SIGKILL');
  }, 120_000);

  it('bisect --broker sends each step to a worker, one job at a time, and finds the same release', async () => {
    const tube = `hunt-${Math.random().toString(36).slice(2, 8)}`;
    const w = startWorker(tube);
    const state = join(fx.dir, 'bisect-brokered');
    const r = await be([...common, 'hunt', 'bisect', '--broker', address, '--tube', tube, '--good', RELEASES[0], '--bad', RELEASES[RELEASES.length - 1], '--test', await fx.test(), '--state', state, ...installFlags()]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain(`be hunt bisect: ${FIRST_BAD} is the first bad release`);
    const s = await stateFile(state);
    const skips = s.runs.filter((x: { verdict: string }) => x.verdict === 'skip').length;
    expect(s.runs.length).toBeLessThanOrEqual(Math.ceil(Math.log2(RELEASES.length)) + skips);
    expect(new Set(s.runs.map((x: { worker?: string }) => x.worker)).size).toBe(1);
    expect(s.runs[0].worker).toMatch(/:\d+$/);
    // One job at a time: each run queued alone, and the worker ran exactly the runs in the state.
    expect(r.stderr.split('\n').filter((l) => l.startsWith('queued 1 run on tube')).length).toBe(s.runs.length);
    const done = w.lines.filter((l) => /: done /.test(l));
    expect(done.length).toBe(s.runs.length);
    w.kill('SIGKILL');
  }, 120_000);

  it('with no worker, says what it waits for and gives up after --wait; the hunt resumes once a worker comes', async () => {
    const tube = `hunt-${Math.random().toString(36).slice(2, 8)}`;
    const state = join(fx.dir, 'no-worker');
    const args = [...common, 'hunt', 'run', '--broker', address, '--tube', tube, '--wait', '3s', '--releases', RELEASES.slice(0, 3).join(','), '--test', await fx.test(), '--state', state, ...installFlags()];
    const r = await be(args);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`waiting for workers on tube ${tube}: 3 jobs queued, 0 reserved`);
    const last = r.stderr.trimEnd().split('\n').pop();
    expect(last).toBe(`be: no worker answered on tube ${tube} at ${address} for 3s (3 jobs queued, 0 reserved); start a be worker and run the same command again to resume (state in ${state})`);
    expect((await stateFile(state)).runs).toEqual([]);
    // The jobs stay queued: a worker and the same command finish the hunt without queueing them twice.
    const w = startWorker(tube);
    const again = await be(args);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toContain(`queued 0 runs on tube ${tube}`);
    expect((await jsonReport(state)).releases.map((x) => x.verdict)).toEqual(RELEASES.slice(0, 3).map(expectedVerdict));
    expect(w.lines.filter((l) => /: done /.test(l)).length).toBe(3);
    w.kill('SIGKILL');
  }, 120_000);

  it('a worker killed mid-run has its job run by the other, every release exactly once', async () => {
    const tube = `hunt-${Math.random().toString(36).slice(2, 8)}`;
    const a = startWorker(tube);
    const state = join(fx.dir, 'brokered-kill');
    // Each run (sleep 2 plus the clone) outlasts the 2 s TTR: only the worker's touches keep it from being handed out twice.
    const hunt = execa(BE_BIN, [...common, 'hunt', 'run', '--broker', address, '--tube', tube, '--ttr', '2', '--releases', RELEASES.join(','), '--test', await fx.test(2, 'slow2.sh'), '--state', state, ...installFlags()], { reject: false });
    // Let worker A start a run, then the second worker joins and A dies in the middle of its run.
    for (let i = 0; i < 600 && !a.lines.some((l) => / started$/.test(l)); i++) await new Promise((r) => setTimeout(r, 50));
    const keyOf = (l: string) => /^job \S+ (\S+): /.exec(l)?.[1] ?? '';
    const killedKey = keyOf(a.lines.find((l) => / started$/.test(l))!);
    const b = startWorker(tube);
    await new Promise((r) => setTimeout(r, 500));
    a.kill('SIGKILL');
    const r = await hunt;
    expect(r.exitCode, r.stderr).toBe(0);
    const report = await jsonReport(state);
    expect(report.releases.map((x) => [x.release, x.verdict, x.runs.length]), JSON.stringify([report.releases.map((x) => x.runs), a.lines, b.lines])).toEqual(RELEASES.map((rel) => [rel, expectedVerdict(rel), 1]));
    const doneA = a.lines.filter((l) => /: done /.test(l)).map(keyOf);
    const doneB = b.lines.filter((l) => /: done /.test(l)).map(keyOf);
    // Nothing ran twice to completion, nothing was lost, and the killed job was finished by B.
    expect([...doneA, ...doneB].sort()).toEqual(RELEASES.map((rel) => killedKey.replace(/\/[^/]+\/1$/, `/${rel}/1`)).sort());
    expect(doneA).not.toContain(killedKey);
    expect(doneB).toContain(killedKey);
    b.kill('SIGKILL');
  }, 150_000);
});
