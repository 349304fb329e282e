import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { parseIfconfig, parseIpOutput } from '../../src/sys/ifaddrs.js';

describe('interface tables', () => {
  it("reads FreeBSD's ifconfig -a: every interface, up or down, with its IPv4 networks", () => {
    // The layout ifconfig(8) prints: a block per interface, inet lines with a hex netmask.
    const text = [
      'em0: flags=8863<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500',
      '\toptions=4e527bb<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,JUMBO_MTU>',
      '\tether 58:9c:fc:10:ff:a1',
      '\tinet 192.168.1.20 netmask 0xffffff00 broadcast 192.168.1.255',
      '\tinet 10.1.0.1 netmask 0xfffff000 broadcast 10.1.15.255',
      '\tinet6 fe80::5a9c:fcff:fe10:ffa1%em0 prefixlen 64 scopeid 0x1',
      '\tmedia: Ethernet autoselect (1000baseT <full-duplex>)',
      '\tstatus: active',
      'lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384',
      '\tinet 127.0.0.1 netmask 0xff000000',
      'bridge0: flags=8843<UP,BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 1500',
      '\tether 58:9c:fc:10:aa:01',
      '\tinet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255',
      '\tstatus: no carrier',
      'tap0: flags=8802<BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 1500',
      '\tstatus: no carrier',
      '',
    ].join('\n');
    expect(Object.fromEntries(parseIfconfig(text))).toEqual({
      em0: ['192.168.1.20/24', '10.1.0.1/20'],
      lo0: ['127.0.0.1/8'],
      bridge0: ['10.0.0.1/24'],
      tap0: [],
    });
  });

  it("reads this host's own `ip -o link show` and `ip -o -4 addr show`", () => {
    const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
    const addrs = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
    const table = parseIpOutput(links, addrs);
    expect(table.get('lo')).toContain('127.0.0.1/8');
    expect(table.size).toBe(links.trim().split('\n').length);
  });
});
