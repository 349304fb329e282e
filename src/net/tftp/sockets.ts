/** UDP sockets for the TFTP server: the request port and one port per transfer. */
import { createSocket, type Socket, type SocketType } from 'node:dgram';

/** Resolve the lookup of IP literals synchronously (dgram would otherwise defer every send a tick). */
function literalLookup(family: 4 | 6) {
  return (host: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void => {
    cb(null, host, family);
  };
}

/** A UDP socket of TYPE whose sends to IP literals go out in the same tick. */
export function udpSocket(type: SocketType): Socket {
  return createSocket({ type, lookup: literalLookup(type === 'udp6' ? 6 : 4) as never });
}

/** Bind a fresh socket to ADDRESS:PORT (exclusively); rejects with the bind error. */
export function bindUdp(type: SocketType, address: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = udpSocket(type);
    const onError = (e: Error): void => {
      try {
        socket.close();
      } catch {
        /* not open */
      }
      reject(e);
    };
    socket.once('error', onError);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

/**
 * Transfer ports: any free port the kernel picks, or the next free one of [low, high] (tftpd-hpa's
 * --port-range), skipping those our own transfers hold; the caller skips those another program
 * has taken by trying the next candidate when a bind fails.
 */
export class TransferPorts {
  private nextPort = 0;
  private readonly inUse = new Set<number>();

  constructor(private readonly range?: [number, number]) {
    if (range) this.nextPort = range[0] + Math.floor(Math.random() * (range[1] - range[0] + 1));
  }

  /** Ports to try in turn, each held until `release` (port 0, "any", when there is no range). */
  *candidates(): Generator<number> {
    const range = this.range;
    if (!range) {
      yield 0;
      return;
    }
    const [low, high] = range;
    for (let tries = high - low + 1; tries > 0; tries--) {
      const port = this.nextPort;
      this.nextPort = port >= high ? low : port + 1;
      if (this.inUse.has(port)) continue;
      this.inUse.add(port);
      yield port;
    }
  }

  /** The port is free again (its transfer ended, or binding it failed). */
  release(port: number): void {
    this.inUse.delete(port);
  }

  /** What a failed search says when every port of the range was tried. */
  exhausted(): string {
    return this.range ? `every port of ${this.range[0]}:${this.range[1]} is in use` : 'no free port';
  }
}
