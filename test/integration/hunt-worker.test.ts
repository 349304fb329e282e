// A worker with --jobs > 1 against a real beanstalkd: bhyve runs take turns (the host has one VM
// setup: its tap and guest address), chroot runs go on beside them. bhyve cannot run on this
// machine, so the release host here is a stand-in that records when each run starts and ends;
// the broker, the jobs and the worker's scheduling are the real ones.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Jackd, { type JackdClient } from 'jackd';
import { makeJob } from '../../src/hunt/protocol.js';
import { serveWorker } from '../../src/hunt/worker.js';
import type { ReleaseHost, RunRequest } from '../../src/hunt/exec.js';
import { startBeanstalkd, type Beanstalkd } from '../helpers/beanstalkd.js';

let broker: Beanstalkd;
let port = 0;
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'be-worker-'));
  broker = await startBeanstalkd();
  port = broker.port;
});

afterAll(async () => {
  await broker?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('be worker --jobs 3', () => {
  it('runs bhyve jobs one at a time while chroot jobs run beside them', async () => {
    const data = Buffer.from('#!/bin/sh\nexit 0\n');
    const test = { name: 'ok.sh', data, sha256: createHash('sha256').update(data).digest('hex') };
    const request = (release: string, method: RunRequest['method']): RunRequest => ({ hunt: 'h1', release, run: 1, method, test, timeoutMs: 60_000, install: {} });
    const requests = [request('13.0', 'bhyve'), request('13.1', 'bhyve'), request('13.2', 'bhyve'), request('14.0', 'chroot'), request('14.1', 'chroot')];

    const producer = new (Jackd as unknown as new () => JackdClient)();
    await producer.connect({ host: '127.0.0.1', port });
    await producer.use('vm-test');
    for (const r of requests) await producer.put(JSON.stringify(makeJob(r, 30)), { ttr: 30 });

    const spans: { method: string; release: string; start: number; end: number }[] = [];
    const host: ReleaseHost = {
      async prepare(release) {
        return { be: `pool/hunt/${release}`, prepareMs: 0, installed: false };
      },
      async runTest(req, _prepared, onOutput) {
        const start = performance.now();
        await new Promise((r) => setTimeout(r, 300));
        onOutput(`ran ${req.release}\n`);
        spans.push({ method: req.method, release: req.release, start, end: performance.now() });
        return { status: 0, signal: null, output: `ran ${req.release}\n`, timedOut: false };
      },
    };
    const log: string[] = [];
    await serveWorker({ broker: { host: '127.0.0.1', port }, tube: 'vm-test', jobs: 3, logDir: join(dir, 'logs'), host, log: (l) => log.push(l), maxJobs: requests.length });

    expect(spans.map((s) => s.release).sort()).toEqual(requests.map((r) => r.release).sort());
    const overlaps = (a: (typeof spans)[0], b: (typeof spans)[0]) => a.start < b.end && b.start < a.end;
    const vms = spans.filter((s) => s.method === 'bhyve');
    for (const a of vms) for (const b of vms) if (a !== b) expect(overlaps(a, b), `${a.release} and ${b.release} ran at once`).toBe(false);
    // the chroot runs did not wait for the VM
    expect(spans.filter((s) => s.method === 'chroot').some((c) => vms.some((v) => overlaps(c, v)))).toBe(true);
    expect(log.filter((l) => l.includes('waiting for the VM in use')).length).toBeGreaterThan(0);

    // every run was answered on its reply tube, good
    for (const r of requests) {
      const job = makeJob(r, 30);
      await producer.watch(job.reply);
      const reply = await producer.reserveWithTimeout(5);
      expect(JSON.parse(reply.payload.toString())).toMatchObject({ key: job.key, verdict: 'good' });
      await producer.delete(reply.id);
      await producer.ignore(job.reply).catch(() => {});
    }
    await producer.quit();
  }, 60_000);
});
