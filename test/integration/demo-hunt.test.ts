import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { ensureZfs } from '../helpers/zfs.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));

describe('bash scripts/demo hunt', () => {
  it('hunts the planted regression, flaky release and metric step, writes the HTML report and cleans up', async () => {
    await ensureZfs();
    const pool = `betestdemo${randomBytes(3).toString('hex')}`;
    const r = await execa('bash', ['scripts/demo', 'hunt'], { cwd: repo, reject: false, env: { BE_DEMO_POOL: pool }, timeout: 900_000 });
    expect(r.exitCode, r.stderr).toBe(0);
    const out = r.stdout;
    // be hunt run --runs 5: verdicts with counts, the step flagged with its size
    expect(out).toMatch(/^13\.5\s+flaky \(2 of 5 bad\)\s+5\s/m);
    expect(out).toMatch(/^14\.0\s+bad\s+5\s/m);
    expect(out).toContain('8 releases: 5 good, 2 bad, 1 flaky');
    expect(out).toMatch(/^boot_ms: ↑ \+30% at 13\.3 /m);
    // be hunt bisect --flaky good, and --metric boot_ms --up
    expect(out).toContain('be hunt bisect: 14.0 is the first bad release');
    expect(out).toMatch(/^flaky: +13\.5 \(2 of 5 bad\), counted as good$/m);
    expect(out).toMatch(/^be hunt bisect: boot_ms went up first in 13\.3 \(\+30% from 13\.0, beyond the noise\)$/m);
    expect(out).toMatch(/^last unmoved: +13\.2$/m);
    // the report is kept and says where; everything else is gone
    const report = /the HTML report is kept at (\S+)$/.exec(out.trimEnd())?.[1];
    expect(report).toBeDefined();
    const html = await readFile(report!, 'utf8');
    expect((html.match(/<g class="error-bar"/g) ?? []).length).toBe(8);
    expect(html).toMatch(/<g class="change" data-release="13\.3" data-change="up">/);
    await rm(report!.replace(/\/report\.html$/, ''), { recursive: true, force: true });
    const work = /--file (\/tmp\/be-demo\.\w+)\/pool\.img/.exec(r.stderr)?.[1];
    expect(work).toBeDefined();
    expect(existsSync(work!)).toBe(false);
    expect((await execa('zpool', ['list', '-H', '-o', 'name'])).stdout.split('\n')).not.toContain(pool);
  }, 900_000);
});
