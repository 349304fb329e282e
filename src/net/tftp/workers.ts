/**
 * Transfers on worker threads: the server keeps the request port, the path checks and the file
 * opening on its own thread and hands each transfer (its open descriptor, or its content, and the
 * port to bind) to the least loaded worker, which runs it with a runner (runner.ts, worker.ts). A
 * lock-step transfer costs a few system calls per block and a wake-up per ACK; spread over threads,
 * a boot storm uses every CPU instead of one.
 *
 * Workers are threads of the same process: they share its credentials, so the privileges the
 * server drops after binding port 69 are dropped for them too, and a worker cannot take them back
 * (a worker thread has no process.setuid, and the saved IDs are gone).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { TftpTransferRecord } from './config.js';
import { batchReads } from './batch.js';
import { LocalRunner, type RunnerConfig, type RunnerEvents, type TransferSpec } from './runner.js';

/** Messages to a worker. */
export type ToWorker =
  | { type: 'start'; spec: TransferSpec }
  | { type: 'cancel'; id: number; code: number; message: string; result: string }
  | { type: 'stop'; code: number; message: string };

/** Messages from a worker. */
type FromWorker =
  | { type: 'started'; id: number; port: number }
  | { type: 'failed'; id: number; message: string }
  | { type: 'confirmed'; id: number }
  | { type: 'ended'; id: number; record: TftpTransferRecord }
  | { type: 'stopped' };

/** Where transfers run: this thread (LocalRunner) or a worker (WorkerRunner). */
export interface Runner {
  readonly load: number;
  start(spec: TransferSpec): Promise<number>;
  cancel(id: number, code: number, message: string, result: string): void;
  stop(code: number, message: string): Promise<void>;
}

/**
 * The built worker entry: tftp-worker.js beside this module's code (the build puts both in dist/).
 * Undefined when running from source, where there is none: transfers then run on this thread.
 */
export function defaultWorkerScript(): string | undefined {
  const url = new URL('./tftp-worker.js', import.meta.url);
  if (url.protocol !== 'file:') return undefined;
  const path = fileURLToPath(url);
  return existsSync(path) ? path : undefined;
}

/** Heap cap per worker: a worker holds per transfer ~200 KiB of chunks, bounded by maxTransfers. */
const WORKER_HEAP_MB = 128;

/** A worker thread running transfers, seen from the server's thread. */
export class WorkerRunner implements Runner {
  private worker!: Worker;
  private online!: Promise<void>;
  private readonly pending = new Map<number, { resolve: (port: number) => void; reject: (e: Error) => void }>();
  private readonly running = new Set<number>();
  private stopped?: () => void;
  private stopping = false;

  constructor(
    private readonly script: string,
    private readonly config: RunnerConfig,
    private readonly events: RunnerEvents,
  ) {
    this.spawn();
  }

  private spawn(): void {
    const worker = new Worker(this.script, {
      workerData: this.config,
      execArgv: [],
      // Descriptors come from the server's thread, which opened them: this worker closes them.
      trackUnmanagedFds: false,
      resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB },
    });
    this.worker = worker;
    this.online = new Promise((resolve, reject) => {
      worker.once('online', resolve);
      worker.once('error', reject);
    });
    this.online.catch(() => undefined);
    worker.on('message', (m: FromWorker) => this.onMessage(m));
    worker.on('error', () => undefined);
    worker.on('exit', () => this.onExit(worker));
  }

  /** Resolves once the worker runs (rejects when it cannot start, e.g. a bad script). */
  ready(): Promise<void> {
    return this.online;
  }

  get load(): number {
    return this.running.size + this.pending.size;
  }

  start(spec: TransferSpec): Promise<number> {
    return new Promise((resolve, reject) => {
      this.pending.set(spec.id, { resolve, reject });
      this.worker.postMessage({ type: 'start', spec } satisfies ToWorker);
    });
  }

  cancel(id: number, code: number, message: string, result: string): void {
    this.worker.postMessage({ type: 'cancel', id, code, message, result } satisfies ToWorker);
  }

  /** End every transfer (their sockets closed), then the worker. */
  async stop(code: number, message: string): Promise<void> {
    this.stopping = true;
    await new Promise<void>((resolve) => {
      this.stopped = resolve;
      this.worker.postMessage({ type: 'stop', code, message } satisfies ToWorker);
    });
    await this.worker.terminate();
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'started': {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        this.running.add(m.id);
        p?.resolve(m.port);
        break;
      }
      case 'failed': {
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        p?.reject(new Error(m.message));
        break;
      }
      case 'confirmed':
        this.events.confirmed(m.id);
        break;
      case 'ended':
        this.running.delete(m.id);
        this.events.ended(m.id, m.record);
        break;
      case 'stopped':
        this.stopped?.();
        break;
    }
  }

  /** A worker that ends on its own (a crash, its heap cap): its transfers fail, a new one takes over. */
  private onExit(worker: Worker): void {
    if (worker !== this.worker) return;
    for (const [, p] of this.pending) p.reject(new Error('worker exited'));
    this.pending.clear();
    for (const id of this.running) {
      this.events.ended(id, { client: '', file: '', bytes: 0, ms: 0, result: 'failed: worker exited', ok: false });
    }
    this.running.clear();
    if (this.stopping) this.stopped?.();
    else this.spawn();
  }
}

/** Runners for a server: `count` workers when the built worker entry is there, else this thread. */
export function createRunners(count: number, script: string | undefined, config: Omit<RunnerConfig, 'index' | 'counters' | 'batchReads'>, events: RunnerEvents): { runners: Runner[]; counters: SharedArrayBuffer } {
  const n = script && count > 0 ? count : 1;
  const counters = new SharedArrayBuffer(16 * n);
  const batch = batchReads(n);
  if (!script || count <= 0) return { runners: [new LocalRunner({ ...config, counters, index: 0, batchReads: batch }, events)], counters };
  const runners = Array.from({ length: n }, (_, index) => new WorkerRunner(script, { ...config, counters, index, batchReads: batch }, events));
  return { runners, counters };
}
