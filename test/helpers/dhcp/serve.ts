/**
 * Runs a DhcpServer as its own process (so tests can place it in a network namespace and
 * kill -9 it). argv[2] is a JSON file of DhcpServerOptions. Prints "READY" once bound, one line per
 * lease event, and "STATS {...}" after a clean SIGTERM shutdown.
 */
import { readFileSync } from 'node:fs';
import { DhcpServer, type DhcpServerOptions } from '../../../src/net/dhcp/index.js';

const opts = JSON.parse(readFileSync(process.argv[2], 'utf8')) as DhcpServerOptions;
const server = new DhcpServer({ ...opts, logger: (line) => process.stdout.write(`${line}\n`) });
await server.start();
process.stdout.write(`READY ${server.port}\n`);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.stop();
  process.stdout.write(`STATS ${JSON.stringify(server.stats)}\n`);
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
