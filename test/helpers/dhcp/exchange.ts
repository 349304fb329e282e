/**
 * Sends one UDP datagram and prints the datagrams received, as JSON lines
 * {"from":..,"port":..,"hex":..}, until `count` arrived or `waitMs` passed.
 * argv: bindAddress bindPort toAddress toPort hex count waitMs
 * Plays a relay agent or a client with an address inside a test namespace.
 */
import dgram from 'node:dgram';

const [bindAddr, bindPort, to, toPort, hex, count, waitMs] = process.argv.slice(2);
const s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
let got = 0;
s.on('message', (msg, r) => {
  process.stdout.write(`${JSON.stringify({ from: r.address, port: r.port, hex: msg.toString('hex') })}\n`);
  if (++got >= Number(count)) process.exit(0);
});
s.bind(Number(bindPort), bindAddr, () => {
  s.setBroadcast(true);
  s.send(Buffer.from(hex, 'hex'), Number(toPort), to, (err) => {
    if (err) {
      process.stderr.write(`send: ${err.message}\n`);
      process.exit(1);
    }
    setTimeout(() => process.exit(0), Number(waitMs));
  });
});
