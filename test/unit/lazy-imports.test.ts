// Lazy loading belongs at the command boundary: a command's module is imported when the command
// runs (src/cli), and below it every dependency is a static import, so the graph can be read from
// the sources and `be --version` loads nothing it does not need (bench/cli.mjs times it).
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const SRC = resolve(join(import.meta.dirname, '../../src'));

/** Every .ts file under DIR, as paths relative to src. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [relative(SRC, join(dir, e.name))] : []);
}

/** The source without its comments (a comment may name import() without calling it). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

/** `file:line: import('x')` for each dynamic import() call in FILE (not `typeof import('x')`, a type). */
function dynamicImports(file: string): string[] {
  const lines = code(readFileSync(join(SRC, file), 'utf8')).split('\n');
  return lines.flatMap((line, i) => [...line.matchAll(/(typeof\s+)?\bimport\s*\(\s*([^)]*)\)/g)].filter((m) => !m[1]).map((m) => `${file}:${i + 1}: import(${m[2]})`));
}

describe('dynamic import() only in src/cli', () => {
  const files = sources(SRC);

  it('finds the commands\' lazy imports in src/cli (the check sees them)', () => {
    expect(files).toContain(join('cli', 'hunt.ts'));
    expect(dynamicImports(join('cli', 'hunt.ts'))).toEqual(expect.arrayContaining([expect.stringMatching(/^cli\/hunt\.ts:\d+: import\('\.\/hunt-run\.js'\)$/)]));
  });

  it('no file under src outside src/cli calls import()', () => {
    const outside = files.filter((f) => !f.startsWith(`cli/`));
    expect(outside.length).toBeGreaterThan(50);
    expect(outside.flatMap(dynamicImports)).toEqual([]);
  });
});
