/**
 * Listens on 0.0.0.0:68 (a DHCP client's port, on a host that may have no address yet) and prints
 * "LISTENING", then every datagram received as a JSON line {"from":..,"port":..,"hex":..}, until
 * SIGTERM. Tells which replies reach a network.
 */
import dgram from 'node:dgram';

const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (msg, r) => process.stdout.write(`${JSON.stringify({ from: r.address, port: r.port, hex: msg.toString('hex') })}\n`));
s.bind(68, '0.0.0.0', () => process.stdout.write('LISTENING\n'));
process.on('SIGTERM', () => s.close(() => process.exit(0)));
