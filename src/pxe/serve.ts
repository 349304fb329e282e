/**
 * `be pxe serve`'s lifecycle: the TFTP server (src/net/tftp) and the DHCP server (src/net/dhcp)
 * started together from checked settings (settings.ts), root dropped once their ports are bound
 * (src/sys/privileges.ts), and both stopped together on SIGINT/SIGTERM or `stop()`. The servers'
 * own errors become `be: …` lines with the same text.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Runner } from '../sys/run.js';
import { BeError } from '../sys/errors.js';
import { dropPrivileges, lookupUser, runningAsRoot, type Account } from '../sys/privileges.js';
import { createTftpServer, TftpError, type TftpFileProvider } from '../net/tftp/index.js';
import { DhcpServer, warmUpExchanges } from '../net/dhcp/index.js';
import { bootFileTable, relayedSubnet, type PxeSettings } from './settings.js';

/**
 * The lease file's directory is handed to the unprivileged user (compaction renames there), so it
 * must be a directory of its own: refuse one that holds anything but the journal.
 */
export async function prepareLeaseDir(leaseFile: string): Promise<void> {
  const dir = dirname(leaseFile);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const base = basename(leaseFile);
  const others = (await readdir(dir)).filter((n) => n !== base && n !== `${base}.tmp`);
  if (others.length > 0) throw new BeError(`--lease-file ${leaseFile}: ${dir} holds other files (${others[0]}); give the leases a directory of their own`);
}

export interface RunningPxe {
  /** Resolves once both servers are stopped (after `stop()` or a signal). */
  done: Promise<void>;
  stop(): Promise<void>;
  /** Ports bound (for tests with port overrides). */
  ports: { dhcp?: number; proxy?: number; tftp?: number };
  account?: Account;
  dropped: boolean;
}

export interface StartOptions {
  runner: Runner;
  log?: (line: string) => void;
  /** Memory files for the TFTP server (e.g. a generated pxelinux.cfg/default). */
  files?: TftpFileProvider;
  /** Port overrides for tests; defaults 67, 4011, 69. */
  ports?: { dhcp?: number; proxy?: number; tftp?: number; client?: number };
  /** Stop on SIGINT/SIGTERM (default true). */
  handleSignals?: boolean;
}

/**
 * Lines for stdout, written together at the end of the event-loop turn that logged them: under a
 * storm the DHCP server logs a line per lease, and one write per turn instead of one per line
 * keeps that off each exchange's cost. `flush` writes what is left at once.
 */
export function turnBufferedLog(write: (text: string) => void): { log: (line: string) => void; flush: () => void } {
  let lines: string[] = [];
  let scheduled = false;
  const flush = (): void => {
    scheduled = false;
    if (lines.length === 0) return;
    const text = `${lines.join('\n')}\n`;
    lines = [];
    write(text);
  };
  return {
    log: (line) => {
      lines.push(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}

/** Start TFTP then DHCP, drop privileges, and serve until a signal or `stop()`. */
export async function startPxe(s: PxeSettings, o: StartOptions): Promise<RunningPxe> {
  const stdout = o.log ? undefined : turnBufferedLog((text) => process.stdout.write(text));
  const log = o.log ?? stdout!.log;
  const account = await lookupUser(o.runner, s.user);
  const root = runningAsRoot();
  if (s.leaseFile && root && account.uid !== 0) await prepareLeaseDir(s.leaseFile);
  else if (s.leaseFile) await mkdir(dirname(s.leaseFile), { recursive: true });

  // The TFTP library's own errors become `be: …` lines with the same text.
  const tftpError = (e: unknown): unknown => (e instanceof TftpError ? new BeError(e.message, { cause: e }) : e);
  let tftp: ReturnType<typeof createTftpServer> | undefined;
  try {
    if (s.tftp) tftp = createTftpServer({ root: s.tftpRoot, address: s.address, port: o.ports?.tftp ?? 69, portRange: s.tftpPortRange, files: o.files, log: (line) => log(line) });
  } catch (e) {
    throw tftpError(e);
  }
  const dhcp = s.dhcp
    ? new DhcpServer({
      serverIp: s.address,
      // Checked above, also without carrier yet (a bridge whose ports are not up): the sockets are
      // bound to it all the same, with its addresses from the table the settings were checked with.
      interface: s.interface,
      interfaces: s.interfaces,
      subnet: s.subnet,
      range: s.range,
      router: s.router,
      dns: s.dns.length ? s.dns : undefined,
      domain: s.domain,
      reservations: s.hosts.map((h) => ({ mac: h.mac, ip: h.ip, hostname: h.hostname })),
      bootFiles: bootFileTable(s),
      ...(s.bootIpxe !== undefined ? { userClassBootFiles: { iPXE: s.bootIpxe } } : {}),
      rootPath: s.rootPath,
      nextServer: s.address,
      proxy: s.proxy,
      leaseFile: s.leaseFile,
      logger: (line) => log(`dhcp ${line}`),
      port: o.ports?.dhcp,
      proxyPort: o.ports?.proxy,
      clientPort: o.ports?.client,
      warmUp: warmUpExchanges(process.env),
    })
    : undefined;

  const ports: RunningPxe['ports'] = {};
  try {
    if (tftp) ports.tftp = (await tftp.start()).port;
    if (dhcp) {
      await dhcp.start();
      ports.dhcp = dhcp.port;
      if (s.proxy) ports.proxy = dhcp.proxyPort;
    }
  } catch (e) {
    await dhcp?.stop().catch(() => {});
    await tftp?.stop().catch(() => {});
    stdout?.flush();
    throw tftpError(e);
  }
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  let stopping: Promise<void> | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping`);
    void stop();
  };
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (o.handleSignals !== false) {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
      await tftp?.stop();
      await dhcp?.stop();
      if (dhcp) {
        // what a storm did, in one line (the per-lease lines say which client got what)
        const st = dhcp.stats;
        log(`dhcp ${st.received} datagrams: ${st.offers} offers, ${st.acks} acks, ${st.naks} naks, ${st.shed} shed under load, ${st.malformed} malformed, ${st.ignored} ignored, ${st.sendErrors} send errors; ${st.journalSyncs} journal syncs`);
      }
      const n = dhcp && !s.proxy ? dhcp.leases().length : undefined;
      log(`stopped${n !== undefined ? `; ${n} lease${n === 1 ? '' : 's'} kept in ${s.leaseFile}` : ''}`);
      stdout?.flush();
      finish();
    })();
    return stopping;
  };
  // from here on a signal stops cleanly (before anything is announced)
  if (o.handleSignals !== false) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }

  if (tftp) log(`tftp serving ${s.tftpRoot} on ${s.address}:${ports.tftp}`);
  if (dhcp && !s.proxy && s.subnet && relayedSubnet(s.address, s.subnet)) {
    log(`dhcp ${s.subnet} does not hold ${s.address}: it is served through DHCP relay agents (requests whose giaddr is in it)`);
  }

  let dropped = false;
  try {
    dropped = await dropPrivileges(account, dhcp?.ownedPaths() ?? []);
  } catch (e) {
    await stop().catch(() => {});
    stdout?.flush();
    throw e instanceof BeError ? e : new BeError(`--user ${s.user}: ${(e as Error).message}`);
  }
  if (dropped) log(`running as ${account.name} (uid ${account.uid})`);

  return { done, stop, ports, account, dropped };
}
