/**
 * `be pxe serve` as a user runs it, inside a network namespace, against real clients: busybox
 * udhcpc (as a PXE client) and tftp-hpa from another namespace on the same bridge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLan, type Lan } from '../helpers/netns.js';
import { buildHelpers, exchange, nsRun, parseUdhcpcLog, udhcpcScript } from '../helpers/dhcp.js';
import { FLAG_BROADCAST, decodePacket, encodePacket, messageType, MessageType, Opt } from '../../src/net/dhcp/index.js';
import { pxeClient as pxeClientIn, startBe, tftpGet as tftpGetIn, type PxeProcess } from '../helpers/pxe.js';
import { BE_BIN, beOk } from '../helpers/cli.js';

let lan: Lan;
let dir: string;
let root: string;
let nobodyUid: number;
const bootBytes = randomBytes(70_000);

function ip(n: number): string {
  return `${lan.prefix}.${n}`;
}

async function br0(args: string[]): Promise<void> {
  await execa('ip', ['-n', lan.client, ...args]);
}

function pxeClient(mac: string, arch = '0000'): Promise<Record<string, string>> {
  return pxeClientIn(lan, dir, mac, arch);
}

function tftpGet(remote: string): Promise<Buffer> {
  return tftpGetIn(lan, dir, remote);
}

function uidLine(status: string): string {
  return status.split('\n').find((l) => l.startsWith('Uid:'))!.replace(/\s+/g, ' ').trim();
}

beforeAll(async () => {
  lan = await makeLan(1);
  dir = await mkdtemp(join(tmpdir(), 'be-pxe-serve-'));
  await chmod(dir, 0o755);
  root = join(dir, 'tftp');
  await mkdir(join(root, 'efi'), { recursive: true });
  await writeFile(join(root, 'pxeboot'), bootBytes);
  await writeFile(join(root, 'efi', 'loader.efi'), 'efi loader\n');
  await execa('chmod', ['-R', 'a+rX', root]);
  nobodyUid = Number((await execa('id', ['-u', 'nobody'])).stdout.trim());
}, 60_000);

afterAll(async () => {
  await lan?.destroy();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('be pxe serve', () => {
  it('leases with boot information, serves TFTP, logs each, runs as nobody, keeps leases over a restart', async () => {
    const leaseFile = join(dir, 'db', 'leases');
    const config = join(dir, 'pxe.json');
    await writeFile(config, JSON.stringify({
      address: lan.serverIps[0], subnet: lan.subnet, range: `${ip(100)}-${ip(110)}`, router: ip(1), dns: [ip(1)],
      'tftp-root': root, 'boot-bios': 'from-config', 'boot-efi': 'efi/loader.efi', 'root-path': `${ip(1)}:/be/default`,
      'lease-file': leaseFile,
    }));
    const mac = '02:be:9e:00:00:01';
    const efiMac = '02:be:9e:00:00:02';
    const args = ['pxe', 'serve', '--config', config, '--boot-bios', 'pxeboot'];
    let server: PxeProcess = startBe(lan.servers[0], args);
    let leased: string;
    try {
      await server.waitFor(/^running as nobody/);
      const status = await readFile(`/proc/${await server.pid()}/status`, 'utf8');
      expect(uidLine(status)).toBe(`Uid: ${nobodyUid} ${nobodyUid} ${nobodyUid} ${nobodyUid}`);
      expect(status.split('\n').find((l) => l.startsWith('Groups:'))!.trim()).toBe('Groups:');

      const bios = await pxeClient(mac);
      leased = bios.ip;
      expect(Number(leased.split('.')[3])).toBeGreaterThanOrEqual(100);
      // the flag overrides the config file's boot-bios
      expect(bios).toMatchObject({ siaddr: lan.serverIps[0], boot_file: 'pxeboot', tftp: lan.serverIps[0], rootpath: `${ip(1)}:/be/default`, router: ip(1), dns: ip(1) });
      await server.waitFor(new RegExp(`^dhcp DHCPACK ${leased.replace(/\./g, '\\.')} to ${mac} for 3600s$`));
      expect(Buffer.compare(await tftpGet('pxeboot'), bootBytes)).toBe(0);
      await server.waitFor(new RegExp(`^tftp ${leased.replace(/\./g, '\\.')}:\\d+ "pxeboot" ${bootBytes.length}/${bootBytes.length} bytes .* ok`));

      // an x64 UEFI client is given the EFI loader
      const efi = await pxeClient(efiMac, '0007');
      expect(efi.boot_file).toBe('efi/loader.efi');
      expect((await tftpGet('efi/loader.efi')).toString()).toBe('efi loader\n');

      expect(await server.stop()).toBe(0);
      expect(server.lines.at(-1)).toBe(`stopped; 2 leases kept in ${leaseFile}`);
      expect(server.lines.filter((l) => l.startsWith('dhcp DHCPACK'))).toHaveLength(2);
      expect(server.lines.at(-2)).toMatch(/^dhcp \d+ datagrams: \d+ offers, 2 acks, 0 naks, 0 shed under load, 0 malformed, \d+ ignored, 0 send errors; [12] journal syncs$/);
      expect((await stat(leaseFile)).uid).toBe(nobodyUid);

      // the journal outlives the process: each client gets its address back, whatever the order
      server = startBe(lan.servers[0], args);
      await server.waitFor(/^running as nobody/);
      expect((await pxeClient(efiMac, '0007')).ip).toBe(efi.ip);
      expect((await pxeClient(mac)).ip).toBe(leased);
      expect(efi.ip).not.toBe(leased);
      expect(await server.stop('SIGINT')).toBe(0);
    } finally {
      await server.stop().catch(() => {});
    }
  }, 120_000);

  it('YAML config, TFTP only', async () => {
    const config = join(dir, 'pxe.yaml');
    await writeFile(config, `address: ${lan.serverIps[0]}\ntftp-root: ${root}\nno-dhcp: true\nuser: nobody\n`);
    const server = startBe(lan.servers[0], ['pxe', 'serve', '--config', config]);
    try {
      await server.waitFor(/^running as nobody/);
      expect(server.lines.some((l) => l.startsWith('dhcp '))).toBe(false);
      await br0(['addr', 'flush', 'dev', 'br0']);
      await br0(['addr', 'add', `${ip(99)}/24`, 'dev', 'br0']);
      expect(Buffer.compare(await tftpGet('/pxeboot'), bootBytes)).toBe(0);
      expect(await server.stop()).toBe(0);
    } finally {
      await server.stop().catch(() => {});
    }
  }, 60_000);

  it('proxy mode listens on 67 and 4011 without a lease file', async () => {
    const server = startBe(lan.servers[0], ['pxe', 'serve', '--proxy', '--address', lan.serverIps[0], '--tftp-root', root]);
    try {
      await server.waitFor(/^running as nobody/);
      expect(server.lines).toContain(`dhcp proxyDHCP server ${lan.serverIps[0]} listening on 0.0.0.0:67 and 4011`);
      expect(await server.stop()).toBe(0);
      expect(server.lines.at(-1)).toBe('stopped');
    } finally {
      await server.stop().catch(() => {});
    }
  }, 60_000);

  it('-n prints the serve step with every setting spelled out; running that line prints it again', async () => {
    const config = join(dir, 'dry.yaml');
    await writeFile(config, `address: 192.168.2.1\nsubnet: 192.168.2.0/24\nrange: 192.168.2.100-192.168.2.199\ndns: 192.168.2.1,192.168.2.2\nhost: ["52-54-00-AB-CD-EF=192.168.2.7,pc7"]\ntftp-root: ${root}\ntftp-port-range: 49152:49407\ndomain: lab.example\nboot-ipxe: http://192.168.2.1/boot.ipxe\n`);
    const first = await beOk(['-n', 'pxe', 'serve', '--config', config, '--boot-efi', 'efi/loader.efi']);
    const line = first.trim().split('\n').at(-1)!;
    expect(line).toBe(`be pxe serve --address 192.168.2.1 --subnet 192.168.2.0/24 --range 192.168.2.100-192.168.2.199 --dns 192.168.2.1 --dns 192.168.2.2 --domain lab.example --boot-bios pxeboot --boot-efi efi/loader.efi --boot-ipxe http://192.168.2.1/boot.ipxe --host 52:54:00:ab:cd:ef=192.168.2.7,pc7 --lease-file /var/lib/be/pxe/leases --tftp-root ${root} --tftp-port-range 49152:49407 --user nobody`);
    const again = await beOk(['-n', ...line.split(' ').slice(1)]);
    expect(again).toBe(first);
  });

  it('finds the subnet of an interface with no carrier yet (a bridge whose ports are down), and serves it once it has one, broadcast replies to 255.255.255.255, also when the default route is elsewhere', async () => {
    const ns = `bepxenc${process.pid}`;
    const client = `bepxecl${process.pid}`;
    const h = await buildHelpers();
    const net = '10.77.9';
    const inNs = (args: string[]) => execa('ip', ['-n', ns, ...args]);
    await execa('ip', ['netns', 'add', ns]);
    await execa('ip', ['netns', 'add', client]);
    try {
      await inNs(['link', 'set', 'lo', 'up']);
      await inNs(['link', 'add', 'br9', 'type', 'bridge']);
      await inNs(['addr', 'add', `${net}.1/24`, 'dev', 'br9']);
      await inNs(['link', 'set', 'br9', 'up']);
      // a port whose other end is down: the bridge has no carrier
      await inNs(['link', 'add', 'vh9', 'type', 'veth', 'peer', 'name', 'vc9', 'netns', client]);
      await inNs(['link', 'set', 'vh9', 'master', 'br9']);
      await inNs(['link', 'set', 'vh9', 'up']);
      expect((await inNs(['link', 'show', 'br9'])).stdout).toContain('NO-CARRIER');
      const dry = await nsRun(ns, [BE_BIN, '-n', 'pxe', 'serve', '--interface', 'br9', '--address', `${net}.1`, '--range', `${net}.100-${net}.110`, '--no-tftp', '--lease-file', join(dir, 'nc', 'leases')]);
      expect(dry.stdout.trim().split('\n').at(-1)).toBe(
        `be pxe serve --address ${net}.1 --interface br9 --subnet ${net}.0/24 --range ${net}.100-${net}.110 --boot-bios pxeboot --boot-efi loader.efi --lease-file ${join(dir, 'nc', 'leases')} --no-tftp --user nobody`,
      );
      const missing = await nsRun(ns, [BE_BIN, '-n', 'pxe', 'serve', '--interface', 'br8', '--address', `${net}.1`, '--range', `${net}.100-${net}.110`, '--no-tftp'], { reject: false });
      expect(missing.stderr).toBe('be: --interface br8: no such interface');
      // started while the bridge has no carrier; a client plugged in afterwards gets a lease
      const server = startBe(ns, [
        'pxe', 'serve', '--interface', 'br9', '--address', `${net}.1`, '--range', `${net}.100-${net}.110`, '--no-tftp', '--lease-file', join(dir, 'nc', 'leases'),
        '--domain', 'lab.example', '--boot-ipxe', `http://${net}.1/boot.ipxe`,
      ]);
      try {
        await server.waitFor(/^running as nobody/);
        // the client's end comes up: a host with no address yet, its broadcasts out of vc9
        await execa('ip', ['-n', client, 'link', 'set', 'vc9', 'up']);
        await execa('ip', ['-n', client, 'route', 'add', 'default', 'dev', 'vc9']);
        // The host's default route leaves by another interface: replies must still go out on br9.
        await inNs(['link', 'add', 'up9', 'type', 'veth', 'peer', 'name', 'up9b']);
        await inNs(['addr', 'add', '192.0.2.1/24', 'dev', 'up9']);
        await inNs(['link', 'set', 'up9b', 'up']);
        await inNs(['link', 'set', 'up9', 'up']);
        await inNs(['route', 'add', 'default', 'via', '192.0.2.254']);
        // an iPXE client (user class "iPXE", option 77) is handed the second-stage script, with option 15
        const { script, log } = await udhcpcScript(dir);
        await nsRun(client, ['busybox', 'udhcpc', '-i', 'vc9', '-n', '-q', '-f', '-t', '5', '-T', '1', '-s', script, '-V', 'PXEClient:Arch:00000:UNDI:002001', '-x', '0x4d:69505845', '-O', 'bootfile']);
        const bound = parseUdhcpcLog(await readFile(log, 'utf8')).find((e) => e.event === 'bound');
        expect(bound?.env).toMatchObject({ domain: 'lab.example', boot_file: `http://${net}.1/boot.ipxe` });
        expect(bound?.env.ip).toMatch(new RegExp(`^${net.replace(/\./g, '\\.')}\\.1(0\\d|10)$`));
        // a plain socket on 0.0.0.0:68 (a firmware's PXE client asking for a broadcast reply) hears
        // its OFFER: sent to 255.255.255.255 on br9, which has a carrier by now
        await execa('ip', ['-n', client, 'addr', 'flush', 'dev', 'vc9']);
        const discover = encodePacket({
          op: 1, htype: 1, hlen: 6, hops: 0, xid: 0x5eed, secs: 0, flags: FLAG_BROADCAST,
          ciaddr: '0.0.0.0', yiaddr: '0.0.0.0', siaddr: '0.0.0.0', giaddr: '0.0.0.0',
          chaddr: Buffer.from('525400c0ffee', 'hex'), sname: '', file: '',
          options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([MessageType.DISCOVER])]]),
        });
        const heard = await exchange(h, client, { bind: '0.0.0.0', bindPort: 68, to: '255.255.255.255', toPort: 67, packet: discover, waitMs: 3000 });
        expect(heard.map((r) => messageType(decodePacket(Buffer.from(r.hex, 'hex'))))).toEqual([MessageType.OFFER]);
      } finally {
        expect(await server.stop()).toBe(0);
      }
    } finally {
      await execa('ip', ['netns', 'del', client], { reject: false });
      await execa('ip', ['netns', 'del', ns], { reject: false });
      await h.cleanup();
    }
  }, 60_000);

  it('refuses every bad value with one line naming it, and starts nothing', async () => {
    const good = ['--address', lan.serverIps[0], '--subnet', lan.subnet, '--range', `${ip(100)}-${ip(110)}`, '--tftp-root', root, '--lease-file', join(dir, 'bad', 'leases')];
    const set = (flag: string, value: string) => {
      const a = [...good];
      const i = a.indexOf(flag);
      if (i >= 0) a[i + 1] = value;
      else a.push(flag, value);
      return a;
    };
    const unknownKey = join(dir, 'unknown.json');
    await writeFile(unknownKey, JSON.stringify({ address: lan.serverIps[0], 'tftp-rot': root }));
    const badYaml = join(dir, 'bad.yaml');
    await writeFile(badYaml, 'address: [unclosed\n');
    const cases: Array<[string[], string]> = [
      [set('--address', '10.0.0.300'), 'be: --address 10.0.0.300: not an IPv4 address'],
      [set('--subnet', '10.0.0.0/33'), 'be: --subnet 10.0.0.0/33: not a CIDR network (e.g. 192.168.2.0/24)'],
      [set('--host', '52:54:00:zz:00:01=10.0.0.5'), 'be: --host 52:54:00:zz:00:01: not a MAC address (e.g. 52:54:00:12:34:56)'],
      [set('--range', '10.250.0.1-10.250.0.9'), `be: --range 10.250.0.1-10.250.0.9 is outside subnet ${lan.subnet}`],
      [set('--tftp-root', join(dir, 'missing')), `be: --tftp-root ${join(dir, 'missing')}: no such directory`],
      [set('--router', 'gateway'), 'be: --router gateway: not an IPv4 address'],
      [set('--user', 'no-such-user-here'), 'be: --user no-such-user-here: no such user'],
      [['pxe', 'serve', '--config', unknownKey], `be: --config ${unknownKey}: unknown key 'tftp-rot'`],
      [['pxe', 'serve', '--config', badYaml], `be: --config ${badYaml}: not valid YAML`],
    ];
    for (const [argv, message] of cases) {
      const full = argv[0] === 'pxe' ? argv : ['pxe', 'serve', ...argv];
      const r = await nsRun(lan.servers[0], [process.execPath, BE_BIN, ...full], { reject: false, timeout: 20_000 });
      expect(r.exitCode, `${full.join(' ')}: ${r.stderr}`).toBe(1);
      expect(r.stdout).toBe('');
      const lines = String(r.stderr).split('\n').filter(Boolean);
      expect(lines, `${full.join(' ')}\n${r.stderr}`).toHaveLength(1);
      expect(lines[0].startsWith(message), `${lines[0]} should start with ${message}`).toBe(true);
    }
    // nothing was started, not even the lease directory
    await expect(stat(join(dir, 'bad'))).rejects.toThrow();
    const listening = await nsRun(lan.servers[0], ['ss', '-uln']);
    expect(String(listening.stdout)).not.toMatch(/:(67|69)\s/);
  }, 120_000);
});
