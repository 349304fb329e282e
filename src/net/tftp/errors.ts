/**
 * The TFTP library's own error: a one-line message starting "tftp: " that names the bad value.
 * The library imports nothing of the program that embeds it; the caller maps these to its own
 * error type at its boundary.
 */
export class TftpError extends Error {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'TftpError';
  }
}
