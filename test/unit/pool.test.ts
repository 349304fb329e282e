// src/sys/pool.ts: the one worker pool (be install's fetches, the hunt's runs).
import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { runPool } from '../../src/sys/pool.js';

/** A task log: which items started, and how many ran at once at most. */
function tracker() {
  let running = 0;
  const t = { started: [] as number[], finished: [] as number[], most: 0 };
  const task = async (item: number, ms: number) => {
    t.started.push(item);
    running++;
    t.most = Math.max(t.most, running);
    await sleep(ms);
    running--;
    t.finished.push(item);
  };
  return { t, task };
}

describe('runPool', () => {
  it('runs at most LIMIT at a time, hands items out in order, and returns results in item order', async () => {
    const { t, task } = tracker();
    const items = [5, 1, 4, 2, 3, 1, 2];
    const out = await runPool(items, 3, async (ms, k) => {
      await task(k, ms * 5);
      return `${k}:${ms}`;
    });
    expect(out).toEqual(items.map((ms, k) => `${k}:${ms}`));
    expect(t.started).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(t.most).toBe(3);
    expect(t.finished).not.toEqual(t.started);
  });

  it('never starts more workers than items, and at least one for a limit below 1', async () => {
    const { t, task } = tracker();
    await runPool([1, 1], 8, (ms, k) => task(k, ms));
    expect(t.most).toBe(2);
    const one = tracker();
    await runPool([1, 1, 1], 0, (ms, k) => one.task(k, ms));
    expect(one.t.most).toBe(1);
    expect(await runPool([], 4, async () => 1)).toEqual([]);
  });

  it('a failure stops handing out items, lets the running ones finish, then throws the first failure', async () => {
    const { t, task } = tracker();
    const run = runPool([0, 1, 2, 3, 4, 5], 2, async (_, k) => {
      if (k === 1) {
        await sleep(5);
        throw new Error('item 1 failed');
      }
      if (k === 3) throw new Error('item 3 failed too');
      await task(k, k === 2 ? 40 : 1);
    });
    await expect(run).rejects.toThrow('item 1 failed');
    // item 2 started before the failure and was waited for; nothing after it started
    expect(t.started).toEqual([0, 2]);
    expect(t.finished).toEqual([0, 2]);
  });

  it('stops handing out items once stopped() is true, without an error', async () => {
    let done = 0;
    await runPool([1, 2, 3, 4, 5], 1, async () => void done++, { stopped: () => done >= 2 });
    expect(done).toBe(2);
  });
});
