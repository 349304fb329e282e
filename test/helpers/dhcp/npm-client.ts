/**
 * The npm `dhcp` package's client doing DISCOVER/OFFER/REQUEST/ACK. argv: mac. Prints the bound
 * state as JSON; exits 1 if no lease within 10 s.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const dhcp = require('dhcp');
const client = dhcp.createClient({ mac: process.argv[2], features: ['hostname', 'bootFile', 'tftpServer'] });
client.on('bound', (state: unknown) => {
  process.stdout.write(`${JSON.stringify(state)}\n`);
  client.close();
  process.exit(0);
});
client.on('error', (e: unknown) => process.stderr.write(`client error: ${String(e)}\n`));
client.listen(68, '0.0.0.0', () => client.sendDiscover());
setTimeout(() => {
  process.stderr.write('no lease\n');
  process.exit(1);
}, 10_000);
