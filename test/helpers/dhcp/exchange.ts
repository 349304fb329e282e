/**
 * Sends one UDP datagram and prints every datagram received within a time window, as JSON lines
 * {"from":..,"port":..,"hex":..}. argv: bindAddress bindPort toAddress toPort hex waitMs
 * Used to play a relay agent or a client with an address inside a test namespace.
 */
import dgram from 'node:dgram';

const [bindAddr, bindPort, to, toPort, hex, waitMs] = process.argv.slice(2);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
s.on('message', (msg, r) => process.stdout.write(`${JSON.stringify({ from: r.address, port: r.port, hex: msg.toString('hex') })}\n`));
s.bind(Number(bindPort), bindAddr, () => {
  s.setBroadcast(true);
  s.send(Buffer.from(hex, 'hex'), Number(toPort), to, (err) => {
    if (err) {
      process.stderr.write(`send: ${err.message}\n`);
      process.exit(1);
    }
    setTimeout(() => s.close(), Number(waitMs));
  });
});
