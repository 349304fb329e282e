/**
 * Wake-on-LAN: the magic packet (6 × 0xff, then the MAC 16 times) as one UDP broadcast. Nothing
 * here is FreeBSD-only (FreeBSD's base has no WoL sender; the packet layout is AMD's), so it runs
 * and is tested for real on every platform.
 */
import { createSocket } from 'node:dgram';
import { BeError } from '../sys/errors.js';
import { normalizeMac } from '../pxe/settings.js';
import { isIpv4 } from '../net/ipv4.js';

export function magicPacket(mac: string): Buffer {
  const bytes = Buffer.from(normalizeMac(mac).split(':').map((h) => parseInt(h, 16)));
  const packet = Buffer.alloc(6 + 16 * 6, 0xff);
  for (let i = 0; i < 16; i++) bytes.copy(packet, 6 + i * 6);
  return packet;
}

export function checkPort(text: string | number): number {
  const port = typeof text === 'number' ? text : /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new BeError(`--port ${text}: not a UDP port (1-65535)`);
  return port;
}

export interface WolOptions {
  broadcast?: string;
  port?: number | string;
}

/** Send the magic packet for MAC; returns where it went. */
export async function wake(mac: string, opts: WolOptions = {}): Promise<{ mac: string; to: string; port: number; bytes: number }> {
  const packet = magicPacket(mac);
  const to = opts.broadcast ?? '255.255.255.255';
  if (!isIpv4(to)) throw new BeError(`--broadcast ${to}: not an IPv4 address`);
  const port = checkPort(opts.port ?? 9);
  const socket = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, () => {
        socket.setBroadcast(true);
        socket.send(packet, port, to, (e) => (e ? reject(e) : resolve()));
      });
    });
  } catch (e) {
    throw new BeError(`cannot send to ${to}:${port}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  } finally {
    socket.close();
  }
  return { mac: normalizeMac(mac), to, port, bytes: packet.length };
}
