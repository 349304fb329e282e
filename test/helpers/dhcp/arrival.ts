/**
 * A Node UDP socket on 0.0.0.0:PORT with an arrival tap beside it for interface DEVICE
 * (src/net/arrival.ts, run with Linux's IP_PKTINFO): prints "LISTENING <ifindex>", then one JSON
 * line {"from":..,"hex":..,"arrival":"here"|"elsewhere"|"unknown"} per datagram, until SIGTERM.
 * argv: device port
 */
import dgram from 'node:dgram';
import { ArrivalTap } from '../../../src/net/arrival.js';

const [device, port] = process.argv.slice(2);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.bind(Number(port), '0.0.0.0', async () => {
  const tap = await ArrivalTap.open({ device, address: '0.0.0.0', port: Number(port) });
  if (typeof tap === 'string') throw new Error(tap);
  s.on('message', (msg, r) => process.stdout.write(`${JSON.stringify({ from: r.address, hex: msg.toString('hex'), arrival: tap.where(msg, r) })}\n`));
  process.on('SIGTERM', () => s.close(() => {
    tap.close();
    process.exit(0);
  }));
  process.stdout.write(`LISTENING ${tap.ifindex}\n`);
});
