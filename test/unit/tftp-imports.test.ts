// src/net/tftp is a library of its own: it imports Node's modules and src/net only, so it can be
// lifted out of `be` (its errors are TftpErrors, mapped to `be: …` lines by be pxe serve).
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const dir = join(import.meta.dirname, '../../src/net/tftp');
const net = resolve(dir, '..');

describe('src/net/tftp dependencies', () => {
  it('imports nothing outside src/net but node: modules', () => {
    const outside: string[] = [];
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files).toContain('server.ts');
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2];
        if (spec.startsWith('node:')) continue;
        const target = spec.startsWith('.') ? resolve(dirname(join(dir, f)), spec) : spec;
        if (!spec.startsWith('.') || relative(net, target).startsWith('..')) outside.push(`${f}: ${spec}`);
      }
    }
    expect(outside).toEqual([]);
  });

  it('keeps every file under 500 lines', () => {
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.ts'))) {
      expect(readFileSync(join(dir, f), 'utf8').split('\n').length, f).toBeLessThanOrEqual(500);
    }
  });
});
