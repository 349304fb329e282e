import { spawn } from 'node:child_process';
import { CommandError, BeError } from './errors.js';
import { runCollected, type RunOptions, type RunResult } from './spawn.js';
export type { RunOptions, RunResult } from './spawn.js';
import { shJoin, shQuote, shWriteFile } from './shell.js';
import { writeFileAtomic, updateTextFile, readTextOrEmpty, type UpdateOptions, type UpdateResult } from './files.js';
import { unifiedDiff } from './diff.js';
import type { Writable } from 'node:stream';

type StdioNull = 'ignore';

export interface RunnerOptions {
  /** Print the plan as a /bin/sh script instead of changing anything. */
  dryRun?: boolean;
  /** Echo each command to stderr before it runs. */
  verbose?: boolean;
  /** Where dry-run scripts and verbose echoes go (default: stdout / stderr). */
  out?: (line: string) => void;
  err?: (line: string) => void;
  env?: Record<string, string>;
  /** The system whose programs this host runs (default: the one be runs on). */
  system?: NodeJS.Platform;
}

export interface StreamOptions {
  /** The whole environment of the program (default: be's own). */
  env?: Record<string, string>;
  cwd?: string;
  /** Attach to be's terminal (interactive); output is then not collected. */
  inherit?: boolean;
  /** SIGTERM to the program's process group when the time is up, SIGKILL 2 s later. */
  timeoutMs?: number;
  onOutput?: (text: string) => void;
  /** Receives a function that signals the running program (to forward Ctrl-C and friends). */
  onStart?: (signal: (sig: NodeJS.Signals) => void) => void;
  /**
   * What a script does with the program's exit status once it has it (shell lines reading the
   * variable named): a recorded run cannot hand its status back, so its reader is recorded too.
   */
  scriptStatus?: (variable: string) => string[];
}

export interface StreamResult {
  /** Exit status, or null when a signal ended it. */
  status: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
  /** The program was recorded into the plan, not run: what it makes is not on the host yet. */
  pending?: boolean;
}

/** What `uname -s` prints on each system a plan can require (usr.bin/uname/uname.c: the kernel's ostype). */
const UNAME: Partial<Record<NodeJS.Platform, string>> = { freebsd: 'FreeBSD' };

/**
 * A word of a later command that holds what a recorded change printed (see `scriptVar`): NUL
 * marks it, which no argv can carry (a live run would refuse it), and a plan prints it as the
 * shell variable that keeps the output.
 */
const VARIABLE = /\0([A-Za-z_][A-Za-z0-9_]*)\0/g;

/** A word of a recorded command: quoted as shJoin does, a scriptVar placeholder as "${name}" inside double quotes. */
export function planWord(word: string): string {
  if (!word.includes('\0')) return shQuote(word);
  const literal = (text: string) => {
    if (text.includes('\0')) throw new BeError('internal: NUL in a command word');
    return text.replace(/[\\"$`]/g, (c) => `\\${c}`);
  };
  let out = '"';
  let at = 0;
  for (const m of word.matchAll(VARIABLE)) {
    out += `${literal(word.slice(at, m.index))}\${${m[1]}}`;
    at = m.index! + m[0].length;
  }
  return `${out}${literal(word.slice(at))}"`;
}

function planJoin(argv: readonly string[]): string {
  return argv.map(planWord).join(' ');
}

type Undo = () => Promise<unknown>;

/**
 * The one process runner. Every external program `be` uses goes through here as an argv array.
 * `query` runs read-only commands (always, even in dry-run); `change` runs commands that modify
 * the host, which in dry-run are only recorded into a /bin/sh script. `step` groups changes with
 * their undo so a failure half-way unwinds what was done.
 */
export class Runner {
  readonly dryRun: boolean;
  readonly verbose: boolean;
  private readonly out: (line: string) => void;
  private readonly err: (line: string) => void;
  private readonly env?: Record<string, string>;
  /** The system whose programs this host runs. */
  readonly system: NodeJS.Platform;
  private readonly script: string[];
  private readonly memo: Map<string, unknown>;
  private undoStack: Undo[][] = [];
  /** Count of processes spawned, for benchmarks. */
  spawns = 0;

  constructor(opts: RunnerOptions = {}, shared?: { script: string[]; memo: Map<string, unknown> }) {
    this.dryRun = !!opts.dryRun;
    this.verbose = !!opts.verbose;
    this.out = opts.out ?? ((l) => process.stdout.write(`${l}\n`));
    this.err = opts.err ?? ((l) => process.stderr.write(`${l}\n`));
    this.env = opts.env;
    this.system = opts.system ?? process.platform;
    this.options = opts;
    this.script = shared?.script ?? [];
    this.memo = shared?.memo ?? new Map();
  }

  private readonly options: RunnerOptions;

  /**
   * A runner for work that goes on beside this one's (parallel runs of a hunt): its own undo
   * stack, the same plan (script and what the plan has made so far).
   */
  fork(): Runner {
    return new Runner(this.options, { script: this.script, memo: this.memo });
  }

  /** State the steps of one plan share (e.g. the datasets it has made), made on first use. */
  shared<T>(key: string, make: () => T): T {
    if (!this.memo.has(key)) this.memo.set(key, make());
    return this.memo.get(key) as T;
  }

  /** Run a command that only reads. */
  async query(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
    return this.exec(argv, opts);
  }

  /**
   * Run (or, in dry-run, record) a command that changes the host. `undo` reverses it.
   * `scriptRetryOn` makes the recorded command try again, as the live caller does, while its
   * error says WORD (e.g. zfs-fuse's "busy" for a moment after an unmount).
   * `scriptVar` names the shell variable a plan keeps the command's output in (`md=$(mdconfig …)`,
   * for a change that prints what it made): the recorded result's stdout is then a placeholder
   * that later commands may hold in their words, printed as "$md" there.
   */
  async change(argv: string[], opts: RunOptions & { undo?: string[] | Undo; scriptVar?: string; scriptRetryOn?: string } = {}): Promise<RunResult> {
    if (this.dryRun) {
      const command = planJoin(argv) + (opts.input !== undefined ? ` <<'BE_INPUT'\n${String(opts.input)}\nBE_INPUT` : '');
      if (opts.scriptRetryOn !== undefined && opts.scriptVar === undefined && opts.input === undefined) {
        this.record(retryLine(command, opts.scriptRetryOn));
        return { stdout: '', stderr: '', status: 0, pending: true };
      }
      if (opts.scriptVar === undefined) {
        this.record(command);
        return { stdout: '', stderr: '', status: 0, pending: true };
      }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.scriptVar)) throw new BeError(`internal: bad script variable '${opts.scriptVar}'`);
      this.record(`${opts.scriptVar}=$(${command})`);
      return { stdout: `\0${opts.scriptVar}\0`, stderr: '', status: 0, pending: true };
    }
    const result = await this.exec(argv, opts);
    if (opts.undo && result.status === 0) this.onUndo(opts.undo);
    return result;
  }

  /**
   * Run a long program whose output is followed as it comes (a test, a chroot shell, a VM), with
   * an optional time limit that ends its whole process group. Recorded, not run, in dry-run.
   */
  async stream(argv: string[], opts: StreamOptions = {}): Promise<StreamResult> {
    if (this.dryRun) {
      this.recordStream(argv, opts);
      return { status: 0, signal: null, timedOut: false, output: '', pending: true };
    }
    if (this.verbose) this.err(`+ ${shJoin(argv)}`);
    this.spawns++;
    return new Promise((resolve, reject) => {
      // Its own process group (except on the terminal, which it must be able to read).
      const child = spawn(argv[0], argv.slice(1), {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        stdio: opts.inherit ? 'inherit' : ['ignore', 'pipe', 'pipe'],
        detached: !opts.inherit,
      });
      const signal = (sig: NodeJS.Signals) => {
        try {
          if (opts.inherit) child.kill(sig);
          else process.kill(-child.pid!, sig);
        } catch {
          child.kill(sig);
        }
      };
      let output = '';
      let timedOut = false;
      const take = (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        output += text;
        opts.onOutput?.(text);
      };
      child.stdout?.on('data', take);
      child.stderr?.on('data', take);
      let killer: NodeJS.Timeout | undefined;
      const timer =
        opts.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              timedOut = true;
              signal('SIGTERM');
              killer = setTimeout(() => signal('SIGKILL'), 2000);
            }, opts.timeoutMs);
      const done = () => {
        clearTimeout(timer);
        clearTimeout(killer);
      };
      child.on('error', (error: NodeJS.ErrnoException) => {
        done();
        reject(new BeError(error.code === 'ENOENT' ? `${argv[0]}: command not found` : `cannot run ${argv[0]}: ${error.message}`, { command: argv }));
      });
      child.on('spawn', () => opts.onStart?.(signal));
      child.on('close', (status, sig) => {
        done();
        resolve({ status: sig ? null : status, signal: sig, timedOut, output });
      });
    });
  }

  /**
   * Run a program that reads or writes a byte stream (zfs send, zfs recv): its stdin from FROM
   * and its stdout to TO, each an open file descriptor (handed to the program as it is, no copy
   * through be) or a Node stream (copied, with `onBytes` told the count as it goes). stderr is
   * collected for the error. A script records it with the redirections `shellFrom`/`shellTo`.
   */
  async carry(
    argv: string[],
    opts: { from?: number | NodeJS.ReadableStream; to?: number | NodeJS.WritableStream; onBytes?: (total: number) => void; shellFrom?: string; shellTo?: string } = {},
  ): Promise<void> {
    if (this.dryRun) {
      this.record(shJoin(argv) + (opts.shellFrom ? ` < ${shQuote(opts.shellFrom)}` : '') + (opts.shellTo ? ` > ${shQuote(opts.shellTo)}` : ''));
      return;
    }
    if (this.verbose) this.err(`+ ${shJoin(argv)}`);
    this.spawns++;
    const stdio = (end: number | NodeJS.ReadableStream | NodeJS.WritableStream | undefined) => (typeof end === 'number' ? end : end ? 'pipe' : 'ignore');
    const child = spawn(argv[0], argv.slice(1), { env: this.env ? { ...process.env, ...this.env } : process.env, stdio: [stdio(opts.from), stdio(opts.to), 'pipe'] });
    let total = 0;
    const count = (chunk: Buffer) => {
      total += chunk.length;
      opts.onBytes?.(total);
    };
    const err: Buffer[] = [];
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    let broken: Error | undefined;
    if (opts.from !== undefined && typeof opts.from !== 'number') {
      const input = opts.from;
      child.stdin!.on('error', () => {}); // the program ended before reading all: its status says why
      input.on('data', count);
      input.on('error', (e: Error) => {
        broken = e;
        child.stdin!.destroy();
      });
      input.pipe(child.stdin!);
    }
    if (opts.to !== undefined && typeof opts.to !== 'number') {
      const output = opts.to;
      child.stdout!.on('data', count);
      output.on('error', (e: Error) => {
        broken = e;
        child.kill('SIGTERM');
      });
      child.stdout!.pipe(output, { end: false });
    }
    const { status, signal, error } = await new Promise<{ status: number | null; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException }>((resolve) => {
      let spawnError: NodeJS.ErrnoException | undefined;
      child.on('error', (e) => (spawnError = e));
      child.on('close', (code, sig) => resolve({ status: code, signal: sig, error: spawnError }));
    });
    if (opts.from !== undefined && typeof opts.from !== 'number') opts.from.unpipe(child.stdin!);
    if (error) throw new BeError(error.code === 'ENOENT' ? `${argv[0]}: command not found` : `cannot run ${argv[0]}: ${error.message}`, { command: argv });
    if (broken) throw new BeError(`${argv[0]}: ${broken.message}`, { command: argv });
    if (signal) throw new BeError(`${argv[0]} killed by ${signal}`, { command: argv });
    if (status !== 0) throw new CommandError(argv, status ?? 128, Buffer.concat(err).toString('utf8'));
  }

  /**
   * A long program as a script runs it: its own environment (env -i), the time limit as
   * timeout(1) (TERM, KILL 2 s later; the status a signal gives, as a live run sees it), and the
   * status kept for the lines that read it.
   */
  private recordStream(argv: string[], opts: StreamOptions): void {
    const env = opts.env ? ['env', '-i', ...Object.entries(opts.env).map(([k, v]) => `${k}=${v}`)] : [];
    const limit = opts.timeoutMs !== undefined ? ['timeout', '-k', '2', '--preserve-status', String(Math.max(1, Math.ceil(opts.timeoutMs / 1000)))] : [];
    const command = planJoin([...env, ...limit, ...argv]);
    const cd = opts.cwd && opts.cwd !== '/' ? `cd ${shQuote(opts.cwd)} && ` : '';
    if (!opts.scriptStatus) {
      this.record(cd ? `(${cd}${command})` : command);
      return;
    }
    this.record(`be_status=0\n${cd ? `(${cd}${command})` : command} || be_status=$?`);
    for (const line of opts.scriptStatus('be_status')) this.record(line);
  }

  /**
   * Run `from | to` without a shell (e.g. `zfs send | zfs recv`): both programs are spawned, the
   * first one's stdout feeds the second one's stdin. Fails with the first program's error if either
   * one fails. Recorded as one pipeline line in dry-run.
   */
  async pipe(from: string[], to: string[], opts: { undo?: string[] | Undo } = {}): Promise<void> {
    if (this.dryRun) {
      this.record(`${planJoin(from)} | ${planJoin(to)}`);
      return;
    }
    for (const argv of [from, to]) if (argv.length === 0 || argv.some((a) => typeof a !== 'string')) throw new BeError('internal: bad argv');
    if (this.verbose) this.err(`+ ${shJoin(from)} | ${shJoin(to)}`);
    this.spawns += 2;
    const env = this.env ? { ...process.env, ...this.env } : process.env;
    const run = (argv: string[], stdio: [StdioNull | 'pipe', StdioNull | Writable]) => {
      const child = spawn(argv[0], argv.slice(1), { env, stdio: [...stdio, 'pipe'] });
      const err: Buffer[] = [];
      child.stderr?.on('data', (b: Buffer) => err.push(b));
      const done = new Promise<{ status: number; signal: NodeJS.Signals | null; error?: NodeJS.ErrnoException; stderr: string }>((resolve) => {
        let error: NodeJS.ErrnoException | undefined;
        child.on('error', (e) => (error = e));
        child.on('close', (code, signal) => resolve({ status: code ?? 128, signal, error, stderr: Buffer.concat(err).toString('utf8') }));
      });
      return { child, done };
    };
    // As a shell pipeline: the consumer's stdin pipe is handed to the producer as its stdout and
    // be keeps no end of it, so the producer sees EPIPE the moment the consumer goes away.
    const consumer = run(to, ['pipe', 'ignore']);
    const producer = run(from, ['ignore', consumer.child.stdin ?? 'ignore']);
    consumer.child.stdin?.destroy();
    // The cause is the producer's failure unless that is only the consumer going away (a broken
    // pipe: SIGPIPE, EPIPE, or ECONNRESET on the socket pair node gives a child): then the consumer's.
    const [made, took] = await Promise.all([producer.done, consumer.done]);
    const failedOf = (argv: string[], r: typeof made) => (r.error || r.signal || r.status !== 0 ? { argv, ...r } : undefined);
    const p = failedOf(from, made);
    const c = failedOf(to, took);
    const brokenPipe = !!p && !p.error && (p.signal === 'SIGPIPE' || /Broken pipe|Connection reset by peer|EPIPE/i.test(p.stderr));
    const first = c && (!p || brokenPipe) ? c : p;
    if (first) {
      const { argv, error } = first;
      if (error) throw new BeError(error.code === 'ENOENT' ? `${argv[0]}: command not found` : `cannot run ${argv[0]}: ${error.message}`, { command: argv });
      if (first.signal) throw new BeError(`${argv[0]} killed by ${first.signal}`, { command: argv });
      throw new CommandError(argv, first.status, first.stderr);
    }
    if (opts.undo) this.onUndo(opts.undo);
  }

  /** Write a file atomically (or print the here-document that would). */
  async writeFile(path: string, content: string | Buffer, opts: { mode?: number; undo?: Undo } = {}): Promise<void> {
    if (this.dryRun) {
      this.record(shWriteFile(path, content, opts.mode));
      return;
    }
    if (this.verbose) this.err(`+ write ${path}`);
    await writeFileAtomic(path, content, opts.mode);
    if (opts.undo) this.onUndo(opts.undo);
  }

  /**
   * Apply EDIT to a shared text file under its lock, with a backup and an undo that puts the old
   * text back; a plan shows the diff as comments, then the here-document that writes the file.
   */
  async updateFile(path: string, edit: (old: string) => string, opts: UpdateOptions = {}): Promise<UpdateResult> {
    if (this.dryRun) {
      const before = await readTextOrEmpty(path);
      const after = edit(before);
      if (after !== before) {
        for (const line of unifiedDiff(before, after, path, `${path} (new)`).trimEnd().split('\n')) this.note(line);
        if (opts.backup) this.note(`previous content kept in ${opts.backup}`);
        this.record(shWriteFile(path, after, opts.mode));
      }
      return { before, after, changed: after !== before };
    }
    const result = await updateTextFile(path, edit, opts);
    if (result.changed) {
      if (this.verbose) this.err(`+ write ${path}`);
      this.onUndo(() => updateTextFile(path, () => result.before, opts));
    }
    return result;
  }

  /** How this host starts `be` itself: the running program, or `be` from the PATH of the machine a plan runs on. */
  self(): string[] {
    return this.dryRun || !process.argv[1] ? ['be'] : [process.execPath, process.argv[1]];
  }

  /** Tell the user something about the host (a reload that did not happen); a plan keeps it as a comment. */
  warn(text: string): void {
    if (this.dryRun) this.record(`# ${text.replace(/\n/g, ' ')}`);
    else this.err(`be: ${text}`);
  }

  /** A host change done in-process (mkdir, truncate, ...) shown as `shell` in dry-run. */
  async act(shell: string, doIt: () => Promise<unknown>, undo?: Undo): Promise<void> {
    if (this.dryRun) {
      this.record(shell);
      return;
    }
    if (this.verbose) this.err(`+ ${shell}`);
    await doIt();
    if (undo) this.onUndo(undo);
  }

  /**
   * Work only SYSTEM's programs can do (jail(8), bhyve(8), mdconfig(8)): a live host of another
   * system refuses it before anything changes (`WHAT needs FreeBSD (use -n to see the plan)`); a
   * plan takes it, its script first making the same check (`uname -s`), once per plan, so that
   * run elsewhere it refuses the same way before its first step.
   */
  requireSystem(system: 'freebsd', what: string): void {
    const name = UNAME[system]!;
    if (!this.dryRun) {
      if (this.system !== system) throw new BeError(`${what} needs ${name} (use -n to see the plan)`);
      return;
    }
    const checked = this.shared('required systems', () => new Set<string>());
    if (checked.has(system)) return;
    checked.add(system);
    this.record(`[ "$(uname -s)" = ${name} ] || { echo ${shQuote(`be: ${what} needs ${name}`)} >&2; exit 1; }`);
  }

  /** Say what only a step that ran can tell (how long it took); a plan says nothing of it. */
  measured(say: () => void): void {
    if (!this.dryRun) say();
  }

  /** A comment line in the dry-run script (e.g. "would mount at ..."). */
  note(text: string): void {
    if (this.dryRun) this.record(`# ${text.replace(/\n/g, ' ')}`);
  }

  /**
   * Run `body` as one all-or-nothing unit: if it throws, every undo registered inside it runs
   * in reverse order, then the error propagates. Nested transactions fold into the outer one.
   */
  async transaction<T>(body: () => Promise<T>): Promise<T> {
    this.undoStack.push([]);
    try {
      const value = await body();
      const done = this.undoStack.pop()!;
      const outer = this.undoStack[this.undoStack.length - 1];
      if (outer) outer.push(...done);
      return value;
    } catch (error) {
      const undos = this.undoStack.pop()!;
      for (const undo of undos.reverse()) {
        try {
          await undo();
        } catch (undoError) {
          this.err(`be: undo failed: ${(undoError as Error).message}`);
        }
      }
      throw error;
    }
  }

  /** The recorded dry-run plan as a runnable /bin/sh script. */
  scriptText(): string {
    return ['#!/bin/sh', 'set -e', ...this.script].join('\n') + '\n';
  }

  /** Print the dry-run script (once, at the end of a command). */
  flushScript(): void {
    if (this.dryRun) this.out(this.scriptText().trimEnd());
  }

  /** Register an undo for the innermost transaction (no-op outside one). */
  onUndo(undo: string[] | Undo): void {
    const top = this.undoStack[this.undoStack.length - 1];
    if (!top) return;
    top.push(typeof undo === 'function' ? undo : () => this.exec(undo, {}));
  }

  private record(line: string): void {
    this.script.push(line);
  }

  private async exec(argv: string[], opts: RunOptions): Promise<RunResult> {
    if (argv.length === 0 || argv.some((a) => typeof a !== 'string')) throw new BeError('internal: bad argv');
    if (this.verbose) this.err(`+ ${shJoin(argv)}`);
    this.spawns++;
    return runCollected(argv, opts, this.env);
  }
}

/**
 * COMMAND in a script, tried again (up to 12 times, a growing pause) while its error output holds
 * WORD; any other failure, or the last, prints the error and ends the script.
 */
export function retryLine(command: string, word: string): string {
  if (!/^[A-Za-z ]+$/.test(word)) throw new BeError(`internal: bad retry word '${word}'`);
  return `be_try=1; until be_err=$(${command} 2>&1); do case $be_err in *'${word}'*) if [ $be_try -lt 12 ]; then sleep $be_try; be_try=$((be_try+1)); continue; fi;; esac; printf '%s\\n' "$be_err" >&2; exit 1; done`;
}
