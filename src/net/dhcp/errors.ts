/** The DHCP library's own error: bad configuration or a port it cannot bind. One line, naming the bad value. */
export class DhcpError extends Error {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'DhcpError';
  }
}
