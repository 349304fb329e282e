/**
 * The worker thread's entry (built to tftp-worker.js beside the server's code): a runner
 * (runner.ts) driven by messages from the server's thread (workers.ts). The worker gets open
 * descriptors and binds transfer ports only; it never sees the request port or a path, and it
 * cannot change the process's credentials (process.setuid is not available in workers).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LocalRunner, type RunnerConfig } from './runner.js';
import type { ToWorker } from './workers.js';

const port = parentPort;
if (!port) throw new Error('tftp-worker: not started as a worker thread');

const runner = new LocalRunner(workerData as RunnerConfig, {
  confirmed: (id) => port.postMessage({ type: 'confirmed', id }),
  ended: (id, record) => port.postMessage({ type: 'ended', id, record }),
});

port.on('message', (m: ToWorker) => {
  if (m.type === 'start') {
    runner.start(m.spec).then(
      (bound) => port.postMessage({ type: 'started', id: m.spec.id, port: bound }),
      (e: Error) => port.postMessage({ type: 'failed', id: m.spec.id, message: e.message }),
    );
  } else if (m.type === 'cancel') {
    runner.cancel(m.id, m.code, m.message, m.result);
  } else if (m.type === 'stop') {
    void runner.stop(m.code, m.message).then(() => port.postMessage({ type: 'stopped' }));
  }
});
