// src/net is a set of libraries of their own (tftp, dhcp, addresses, MACs, interfaces): every
// file imports Node's modules and src/net only, so any of them can be lifted out of `be` (their
// errors are their own types, mapped to `be: …` lines by be pxe serve). The one package allowed is
// koffi, the optional FFI that libc.ts alone loads (on first use) for the calls Node's dgram lacks.
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const net = resolve(join(import.meta.dirname, '../../src/net'));

/** Every .ts file under DIR, as paths relative to src/net. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(net, join(dir, e.name))] : []);
}

/** Imports of FILE (relative to src/net) that leave src/net or are packages. */
function outsideImports(file: string): string[] {
  const outside: string[] = [];
  const text = readFileSync(join(net, file), 'utf8');
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|[Rr]equire\((?:[^()]*\)\()?\s*['"]([^'"]+)['"]\s*\)/g)) {
    const spec = m[1] ?? m[2] ?? m[3];
    if (file === 'libc.ts' && spec === 'koffi') continue;
    if (spec.startsWith('node:')) continue;
    const target = spec.startsWith('.') ? resolve(dirname(join(net, file)), spec) : spec;
    if (!spec.startsWith('.') || relative(net, target).startsWith('..')) outside.push(`${file}: ${spec}`);
  }
  return outside;
}

describe('src/net dependencies', () => {
  const files = sources(net);

  it('src/net/tftp imports nothing outside src/net but node: modules', () => {
    expect(files).toContain(join('tftp', 'server.ts'));
    expect(files.filter((f) => f.startsWith('tftp/')).flatMap(outsideImports)).toEqual([]);
  });

  it('nothing in src/net (dhcp, tftp, ipv4, mac, ifaddrs) imports from outside it', () => {
    for (const f of [join('dhcp', 'server.ts'), 'ipv4.ts', 'mac.ts', 'ifaddrs.ts']) expect(files).toContain(f);
    expect(files.flatMap(outsideImports)).toEqual([]);
  });

  it('keeps every file under 500 lines', () => {
    for (const f of files) expect(readFileSync(join(net, f), 'utf8').split('\n').length, f).toBeLessThanOrEqual(500);
  });
});
