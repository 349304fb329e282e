/**
 * A lease storm through a relay address: `count` made-up clients, `concurrency` at a time, each
 * doing a full 4-way exchange. Prints "ACK <mac> <ip>" per lease as soon as the ACK arrives, then
 * "DONE <acked> <failed>". argv: relayIp serverIp count concurrency
 */
import { RelayClient } from './relay-client.js';
import { randomBytes } from 'node:crypto';

const [relayIp, serverIp, count, concurrency] = process.argv.slice(2);
const client = new RelayClient(relayIp, serverIp);
await client.bind();
let next = 0;
let acked = 0;
let failed = 0;
async function worker(): Promise<void> {
  while (next < Number(count)) {
    next++;
    const mac = randomBytes(6);
    mac[0] = (mac[0] & 0xfc) | 0x02;
    const ip = await client.lease(mac, 2, 1000);
    if (ip) {
      acked++;
      process.stdout.write(`ACK ${[...mac].map((b) => b.toString(16).padStart(2, '0')).join(':')} ${ip}\n`);
    } else failed++;
  }
}
await Promise.all(Array.from({ length: Number(concurrency) }, worker));
process.stdout.write(`DONE ${acked} ${failed}\n`);
client.close();
