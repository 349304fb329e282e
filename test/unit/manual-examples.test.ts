/**
 * The commands shown in be(8) EXAMPLES and in the README's shell blocks name commands, options
 * and as many arguments as the CLI takes; and the manual page is clean mdoc (mandoc -T lint).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Command, Option } from 'commander';
import { buildProgram } from '../../src/cli/program.js';

const repo = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));

/** Words of a shell command line: quotes grouped, a `#` word starts a comment. */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) {
    if (m[3] === '#' || m[3]?.startsWith('#')) break;
    out.push(m[1] ?? m[2] ?? m[3]);
  }
  return out;
}

/** The `be …` command of a line (`… | be …` and `VAR=x be …` included), or undefined. */
function beCommand(line: string): string[] | undefined {
  const w = words(line.trim());
  const at = w.findIndex((x, i) => x === 'be' && (i === 0 || w[i - 1] === '|' || /^[A-Z_]+=/.test(w[i - 1])));
  if (at < 0) return undefined;
  const end = w.indexOf('|', at);
  return w.slice(at + 1, end < 0 ? undefined : end);
}

function takesValue(o: Option): boolean {
  return o.required || o.optional;
}

/** Check argv against the program: every option known, positional count within bounds. */
let program: Command;
beforeAll(async () => {
  program = await buildProgram();
});

function check(argv: string[]): string | undefined {
  let cmd: Command = program;
  let i = 0;
  const options = (c: Command) => (c as unknown as { options: Option[] }).options;
  const find = (c: Command, flag: string) => options(c).find((o) => o.long === flag || o.short === flag);
  // options before the command are the program's
  for (; i < argv.length && argv[i].startsWith('-'); i++) {
    const o = find(cmd, argv[i].split('=')[0]);
    if (!o) return `unknown global option ${argv[i]}`;
    if (takesValue(o) && !argv[i].includes('=')) i++;
  }
  for (;;) {
    const sub = cmd.commands.find((c) => c.name() === argv[i] || c.aliases().includes(argv[i]));
    if (!sub) break;
    cmd = sub;
    i++;
  }
  if (cmd.commands.length > 0) return `"${argv[i] ?? ''}" is not a subcommand of ${cmd.name()}`;
  let positional = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      positional += argv.length - i - 1;
      break;
    }
    if (a.startsWith('-') && a !== '-') {
      const o = find(cmd, a.split('=')[0]);
      if (!o) return `${cmd.name()}: unknown option ${a}`;
      if (takesValue(o) && !a.includes('=')) {
        if (i + 1 >= argv.length) return `${cmd.name()}: ${a} needs a value`;
        i++;
      }
    } else positional++;
  }
  const args = cmd.registeredArguments;
  const required = args.filter((x) => x.required).length;
  const variadic = args.some((x) => x.variadic);
  if (positional < required) return `${cmd.name()}: ${positional} arguments, needs ${required}`;
  if (!variadic && positional > args.length && !args.length) return `${cmd.name()}: takes no arguments, got ${positional}`;
  if (!variadic && positional > args.length) return `${cmd.name()}: ${positional} arguments, takes ${args.length}`;
  return undefined;
}

function manualExamples(): string[] {
  const man = readFileSync(repo('be.8'), 'utf8');
  const section = man.slice(man.indexOf('.Sh EXAMPLES'), man.indexOf('.Sh SEE ALSO'));
  const lines: string[] = [];
  let literal = false;
  for (const l of section.split('\n')) {
    if (l.startsWith('.Bd -literal')) literal = true;
    else if (l.startsWith('.Ed')) literal = false;
    else if (literal) lines.push(l);
  }
  return lines;
}

function readmeCommands(): string[] {
  const lines: string[] = [];
  let inSh = false;
  for (const l of readFileSync(repo('README.md'), 'utf8').split('\n')) {
    if (l.startsWith('```')) inSh = l === '```sh';
    else if (inSh) lines.push(l);
  }
  return lines;
}

describe('commands shown to users', () => {
  it('be(8) EXAMPLES: every command, option and argument count is what the CLI takes', () => {
    const cmds = manualExamples().map(beCommand).filter((c): c is string[] => !!c);
    expect(cmds.length).toBeGreaterThanOrEqual(20);
    const bad = cmds.map((c) => [c.join(' '), check(c)]).filter(([, e]) => e);
    expect(bad).toEqual([]);
  });

  it('README: every be command in its shell blocks is what the CLI takes', () => {
    const cmds = readmeCommands().map(beCommand).filter((c): c is string[] => !!c);
    expect(cmds.length).toBeGreaterThanOrEqual(40);
    const bad = cmds.map((c) => [c.join(' '), check(c)]).filter(([, e]) => e);
    expect(bad).toEqual([]);
  });

  it('the checker catches an unknown option, a missing argument and an unknown command', () => {
    expect(check(['create', '--no-such-flag', 'x'])).toMatch(/unknown option --no-such-flag/);
    expect(check(['-R', 'lab/ROOT', 'destroy'])).toMatch(/0 arguments, needs 1/);
    expect(check(['pool', 'frobnicate'])).toMatch(/not a subcommand of pool/);
    expect(check(['-R', 'lab/ROOT', 'create', '-e', 'head', 'copy'])).toBeUndefined();
  });

  it('be.8 is clean mdoc: mandoc -T lint reports no warning', async () => {
    const r = await execa('mandoc', ['-T', 'lint', '-W', 'warning', repo('be.8')], { reject: false });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
  });
});
