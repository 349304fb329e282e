/** The one error type `be` reports to users: a one-line message, optionally the failing command. */
export class BeError extends Error {
  readonly exitCode: number;
  readonly command?: string[];
  /** libbe's number for the same failure (lib/libbe/be.h be_error_t): the bectl verbs exit with it. */
  readonly libbe?: number;
  constructor(message: string, opts: { exitCode?: number; command?: string[]; cause?: unknown; libbe?: number } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'BeError';
    this.exitCode = opts.exitCode ?? 1;
    this.command = opts.command;
    this.libbe = opts.libbe;
  }
}

/** Bad command-line usage: the CLI exits 2. */
export class UsageError extends BeError {
  constructor(message: string) {
    super(message, { exitCode: 2 });
    this.name = 'UsageError';
  }
}

/** A program `be` ran exited non-zero. */
export class CommandError extends BeError {
  readonly program: string;
  readonly status: number;
  readonly stderr: string;
  constructor(argv: string[], status: number, stderr: string) {
    const last = stderr.trim().split('\n').filter(Boolean).pop() ?? '';
    super(`${argv[0]} exited ${status}${last ? `: ${last}` : ''}`, { command: argv });
    this.name = 'CommandError';
    this.program = argv[0];
    this.status = status;
    this.stderr = stderr;
  }
}
