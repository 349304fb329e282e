// One boot-method interface: src/boot/index.ts is the one registry, and both the `be` boot verbs
// (src/cli/boot.ts) and the hunt (--method) take their methods from it, never from a method's own
// module or a registry of their own.
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { bootMethods, bootMethod } from '../../src/boot/index.js';
import { HUNT_METHODS, huntMethod } from '../../src/hunt/methods.js';
import { TEST_DIR } from '../../src/hunt/exec.js';
import { makeContext } from '../../src/be/context.js';
import { BeError } from '../../src/sys/errors.js';
import { BE_BIN } from '../helpers/cli.js';

const SRC = resolve(join(import.meta.dirname, '../../src'));

/** Every .ts file under DIR (relative to src). */
function sources(dir: string): string[] {
  return readdirSync(join(SRC, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

/** The modules FILE (relative to src) imports, static and dynamic, as paths relative to src (packages as named). */
function imports(file: string): Array<{ target: string; dynamic: boolean }> {
  const text = readFileSync(join(SRC, file), 'utf8');
  const out: Array<{ target: string; dynamic: boolean }> = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    const spec = m[1] ?? m[2];
    const target = spec.startsWith('.') ? relative(SRC, resolve(dirname(join(SRC, file)), spec)).replace(/\.js$/, '.ts') : spec;
    out.push({ target, dynamic: m[2] !== undefined });
  }
  return out;
}

const ctx = () => makeContext({ env: { BE_PLATFORM: 'zfs-fuse' } });
const run = { env: {}, timeoutMs: 1000, onOutput: () => {}, place: async () => {}, dir: TEST_DIR, scriptStatus: () => [] };

describe('the boot registry', () => {
  it('holds chroot, jail, bhyve, pxe and qemu, each under its own name, each with boot, stop and runTest', () => {
    expect(Object.keys(bootMethods).sort()).toEqual(['bhyve', 'chroot', 'jail', 'pxe', 'qemu']);
    for (const [key, m] of Object.entries(bootMethods)) {
      expect(m.name).toBe(key);
      for (const f of ['runsHere', 'boot', 'stop', 'runTest'] as const) expect(typeof m[f], `${key}.${f}`).toBe('function');
      expect(bootMethod(key)).toBe(m);
    }
    expect(bootMethod('toString')).toBeUndefined();
  });

  it("the hunt's --method values are the registry's own objects, and the CLI offers exactly those", async () => {
    expect([...HUNT_METHODS]).toEqual(['chroot', 'jail', 'bhyve', 'qemu']);
    for (const m of HUNT_METHODS) expect(huntMethod(m)).toBe(bootMethods[m]);
    const r = await execa(BE_BIN, ['hunt', 'run', '--method', 'pxe', '--releases', '14.1', '--test', '/bin/true'], { reject: false });
    expect([r.exitCode, r.stderr]).toEqual([2, `be: invalid method 'pxe': expected ${HUNT_METHODS.slice(0, -1).join(', ')} or ${HUNT_METHODS.at(-1)}`]);
  });

  it('pxe runs no tests, and jail and bhyve refuse a host without FreeBSD, each with one line, before anything is done', async () => {
    let placed = 0;
    const counted = { ...run, place: async () => void placed++ };
    const refusal = async (p: Promise<unknown>) => p.then(() => 'ran', (e: unknown) => (e instanceof BeError ? e.message : `not a BeError: ${String(e)}`));
    expect(await refusal(bootMethods.pxe.runTest(ctx(), 'p/ROOT/a', ['/t'], counted))).toBe("method 'pxe' runs no tests: its guest boots what be sharepxe serves, not the BE given; use bhyve (NFS root) or qemu");
    expect(await refusal(bootMethods.jail.runTest(ctx(), 'p/ROOT/a', ['/t'], counted))).toBe("method 'jail' needs FreeBSD's jail(8); use --method chroot here");
    expect(await refusal(bootMethods.bhyve.runTest(ctx(), 'p/ROOT/a', ['/t'], counted))).toBe("method 'bhyve' needs FreeBSD's bhyve(8) (use -n to see the plan); use --method chroot here");
    expect(placed).toBe(0);
  });
});

describe('one registry, looked up by the boot verbs and the hunt alike', () => {
  it('src/cli/boot.ts takes every method from the registry (be chroot, jail, ujail, bootnfs, bootpxe and --vmm qemu), loaded lazily', () => {
    const boot = imports(join('cli', 'boot.ts')).filter((i) => i.target.startsWith('boot/'));
    expect([...new Set(boot.map((i) => i.target))]).toEqual(['boot/index.ts']);
    expect(boot.every((i) => i.dynamic)).toBe(true);
    const text = readFileSync(join(SRC, 'cli', 'boot.ts'), 'utf8');
    const used = [...new Set([...text.matchAll(/bootMethods\.(\w+)\.(\w+)\(/g)].map((m) => `${m[1]}.${m[2]}`))].sort();
    expect(used).toEqual(['bhyve.boot', 'chroot.boot', 'jail.boot', 'jail.stop', 'pxe.boot', 'qemu.boot']);
  });

  it("no file under src/hunt imports a method's module (chroot, jail, bhyve, pxe, qemu, the guest runner): only the registry", () => {
    const methods = ['chroot', 'jail', 'bhyve', 'pxe', 'qemu', 'qemuboot', 'guest'].map((m) => `boot/${m}.ts`);
    const found = sources('hunt').flatMap((f) => imports(f).filter((i) => methods.includes(i.target)).map((i) => `${f}: ${i.target}`));
    expect(found).toEqual([]);
    expect(imports(join('hunt', 'be-host.ts')).map((i) => i.target)).toContain('boot/index.ts');
    expect(imports(join('hunt', 'methods.ts')).map((i) => i.target)).toContain('boot/index.ts');
  });

  it('src/boot imports nothing from src/hunt or src/cli, and loads nothing lazily (only src/cli does)', () => {
    const found = sources('boot').flatMap((f) => imports(f).filter((i) => i.dynamic || /^(hunt|cli)\//.test(i.target)).map((i) => `${f}: ${i.target}`));
    expect(found).toEqual([]);
    const hunt = ['methods.ts', 'be-host.ts'].flatMap((f) => imports(join('hunt', f)).filter((i) => i.dynamic).map((i) => `hunt/${f}: ${i.target}`));
    expect(hunt).toEqual([]);
  });
});
