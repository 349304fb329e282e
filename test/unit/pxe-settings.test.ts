import { describe, expect, it } from 'vitest';
import { bootFileTable, checkPxeSettings, defaultLeaseFile, mergePxeInput, normalizeMac, parseHost, parsePxeConfig, relayedSubnet } from '../../src/pxe/settings.js';
import { magicPacket } from '../../src/boot/wol.js';

const base = { address: '192.168.2.1', subnet: '192.168.2.0/24', range: '192.168.2.100-192.168.2.199', 'no-tftp': true } as const;

describe('pxe settings', () => {
  it('config keys are the long flag names; JSON and YAML read the same', () => {
    const json = parsePxeConfig('{"address":"10.0.0.1","tftp-root":"/srv/tftp","host":["52:54:00:00:00:01=10.0.0.5,pc1"],"proxy":false}', 'pxe.json');
    const yaml = parsePxeConfig('address: 10.0.0.1\ntftp-root: /srv/tftp\nhost:\n  - 52:54:00:00:00:01=10.0.0.5,pc1\nproxy: false\n', 'pxe.yaml');
    expect(yaml).toEqual(json);
    expect(() => parsePxeConfig('{"adress":"10.0.0.1"}', 'pxe.json')).toThrow("--config pxe.json: unknown key 'adress'");
    expect(() => parsePxeConfig('[1]', 'pxe.json')).toThrow('--config pxe.json: expected an object of settings');
    expect(() => parsePxeConfig('{', 'pxe.json')).toThrow(/^--config pxe.json: not valid JSON: /);
  });

  it('flags override the file; absent flags keep it', () => {
    expect(mergePxeInput({ address: '10.0.0.1', 'boot-bios': 'a' }, { 'boot-bios': 'b', address: undefined })).toEqual({ address: '10.0.0.1', 'boot-bios': 'b' });
  });

  it('defaults: pxeboot / loader.efi, nobody, a lease file of its own', async () => {
    const s = await checkPxeSettings(base, { platform: 'freebsd' });
    expect(s).toMatchObject({ bootBios: 'pxeboot', bootEfi: 'loader.efi', user: 'nobody', dhcp: true, tftp: false, leaseFile: '/var/db/be/pxe/leases' });
    expect(defaultLeaseFile('linux')).toBe('/var/lib/be/pxe/leases');
    expect(bootFileTable(s)).toEqual({ 0: 'pxeboot', 6: 'loader.efi', 7: 'loader.efi', 9: 'loader.efi', default: 'pxeboot' });
    const proxy = await checkPxeSettings({ address: '192.168.2.1', proxy: true, 'no-tftp': true });
    expect(proxy.leaseFile).toBeUndefined();
  });

  it('each bad value is one line naming it', async () => {
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ ...base, address: undefined }, '--address: needed (the server address clients talk to)'],
      [{ ...base, subnet: '192.168.2.1/24' }, '--subnet 192.168.2.1/24: host bits set (the network is 192.168.2.0/24)'],
      [{ ...base, range: '192.168.2.200-192.168.2.100' }, '--range 192.168.2.200-192.168.2.100: 192.168.2.200 comes after 192.168.2.100'],
      [{ ...base, range: '192.168.2.100' }, '--range 192.168.2.100: expected FIRST-LAST (e.g. 10.0.0.100-10.0.0.199)'],
      [{ ...base, router: '10.0.0.1' }, '--router 10.0.0.1 is outside subnet 192.168.2.0/24'],
      [{ ...base, dns: ['192.168.2.1', 'x'] }, '--dns x: not an IPv4 address'],
      [{ ...base, host: ['52:54:00:00:00:01=10.0.0.5'] }, '--host 52:54:00:00:00:01=10.0.0.5: 10.0.0.5 is outside subnet 192.168.2.0/24'],
      [{ ...base, host: ['52:54:00:00:00:01=192.168.2.5', '52:54:00:00:00:02=192.168.2.5'] }, '--host 52:54:00:00:00:02=192.168.2.5: 192.168.2.5 is also reserved for 52:54:00:00:00:01'],
      [{ ...base, host: ['52:54:00:00:00:01=192.168.2.5,bad_name'] }, "--host 52:54:00:00:00:01=192.168.2.5,bad_name: bad host name 'bad_name'"],
      [{ ...base, proxy: 'yes' }, '--proxy: expected true or false, not "yes"'],
      [{ ...base, proxy: true }, '--range 192.168.2.100-192.168.2.199: not used with --proxy'],
      [{ ...base, 'no-tftp': false }, '--tftp-root: needed (the directory served over TFTP), or --no-tftp'],
      [{ ...base, 'no-dhcp': true }, '--no-dhcp and --no-tftp: nothing left to serve'],
      [{ ...base, 'boot-bios': 'two words' }, '--boot-bios "two words": not a boot file name'],
      [{ ...base, interface: 'nosuchif0' }, '--interface nosuchif0: no such interface'],
      [{ ...base, range: undefined }, '--range: needed (or --host reservations, or --proxy)'],
      [{ ...base, user: 'a b' }, '--user a b: not a user name'],
      [{ ...base, domain: 'lab_example' }, '--domain lab_example: not a domain name'],
      [{ ...base, 'boot-ipxe': 'two words' }, '--boot-ipxe "two words": not a boot file name or URL'],
      [{ ...base, 'tftp-port-range': '69:100' }, '--tftp-port-range 69:100: expected LOW:HIGH within 1024-65535'],
      [{ ...base, 'tftp-port-range': '5000:4000' }, '--tftp-port-range 5000:4000: expected LOW:HIGH'],
      [{ ...base, 'tftp-port-range': '5000-6000' }, '--tftp-port-range 5000-6000: expected LOW:HIGH'],
    ];
    for (const [input, message] of bad) {
      await expect(checkPxeSettings(input), message).rejects.toThrow(message);
    }
  });

  it('a --subnet that does not hold --address is a network behind a DHCP relay: accepted with a router in it', async () => {
    const relayed = { address: '192.168.9.1', subnet: '192.168.2.0/24', range: '192.168.2.100-192.168.2.199', router: '192.168.2.1', 'no-tftp': true };
    const s = await checkPxeSettings(relayed);
    expect(s).toMatchObject({ address: '192.168.9.1', subnet: '192.168.2.0/24', range: '192.168.2.100-192.168.2.199', router: '192.168.2.1' });
    expect(relayedSubnet(s.address, s.subnet!)).toBe(true);
    expect(relayedSubnet('192.168.2.1', '192.168.2.0/24')).toBe(false);
    const bad: Array<[Record<string, unknown>, string]> = [
      [{ ...relayed, router: undefined }, '--router: needed for --subnet 192.168.2.0/24, which does not hold --address 192.168.9.1 (a relayed network reaches the server through its router)'],
      [{ ...relayed, router: '192.168.9.254' }, '--router 192.168.9.254 is outside subnet 192.168.2.0/24'],
      [{ ...relayed, range: '192.168.9.100-192.168.9.199' }, '--range 192.168.9.100-192.168.9.199 is outside subnet 192.168.2.0/24'],
      [{ ...relayed, host: ['52:54:00:00:00:01=192.168.9.5'] }, '--host 52:54:00:00:00:01=192.168.9.5: 192.168.9.5 is outside subnet 192.168.2.0/24'],
    ];
    for (const [input, message] of bad) {
      await expect(checkPxeSettings(input), message).rejects.toThrow(message);
    }
  });

  it('MACs in any common spelling; hosts as MAC=IP[,NAME]', () => {
    for (const m of ['52:54:00:AB:cd:0e', '52-54-00-ab-cd-0e', '5254.00ab.cd0e', '525400abcd0e']) expect(normalizeMac(m)).toBe('52:54:00:ab:cd:0e');
    for (const m of ['52:54:00:ab:cd', '52:54:00:ab:cd:0e:ff', '52:54-00:ab:cd:0e', 'zz:54:00:ab:cd:0e', '']) expect(() => normalizeMac(m)).toThrow(/not a MAC address/);
    expect(parseHost('52:54:00:ab:cd:0e=10.0.0.5,builder.lab')).toEqual({ mac: '52:54:00:ab:cd:0e', ip: '10.0.0.5', hostname: 'builder.lab' });
    expect(parseHost('52:54:00:ab:cd:0e=10.0.0.5')).toEqual({ mac: '52:54:00:ab:cd:0e', ip: '10.0.0.5' });
    expect(() => parseHost('52:54:00:ab:cd:0e')).toThrow('--host 52:54:00:ab:cd:0e: expected MAC=IP[,NAME]');
  });

  it('the Wake-on-LAN magic packet is 6 x 0xff then the MAC 16 times', () => {
    const p = magicPacket('01:02:03:04:05:06');
    expect(p.length).toBe(102);
    expect(p.subarray(0, 6)).toEqual(Buffer.alloc(6, 0xff));
    for (let i = 0; i < 16; i++) expect([...p.subarray(6 + i * 6, 12 + i * 6)]).toEqual([1, 2, 3, 4, 5, 6]);
  });
});
