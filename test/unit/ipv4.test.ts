// src/net/ipv4.ts: the one IPv4/CIDR module, and every reader of addresses agreeing with it.
import { describe, expect, it } from 'vitest';
import { broadcastOf, cidrOf, cidrString, formatIpv4, inCidr, isIpv4, maskPrefix, parseCidr, parseIpv4, prefixMask } from '../../src/net/ipv4.js';
import { checkIpv4, parseNetwork } from '../../src/share/spec.js';
import { parseCidrFlag } from '../../src/pxe/settings.js';
import { DhcpError, ipToInt, parseCidr as dhcpCidr } from '../../src/net/dhcp/index.js';
import { parseAddress } from '../../src/boot/bhyve.js';

describe('IPv4 addresses', () => {
  it('reads a dotted quad as inet_pton4 does: four decimal octets up to 255, no leading zeros', () => {
    expect(parseIpv4('0.0.0.0')).toBe(0);
    expect(parseIpv4('192.168.2.1')).toBe(0xc0a80201);
    expect(parseIpv4('255.255.255.255')).toBe(0xffffffff);
    for (const bad of ['256.0.0.1', '010.0.0.1', '10.1', '10.0.0', '1.2.3.4.5', ' 1.2.3.4', '1..2.3', '1.2.3.', '0x1.2.3.4', '+1.2.3.4', '']) {
      expect(parseIpv4(bad), bad).toBeUndefined();
      expect(isIpv4(bad), bad).toBe(false);
    }
  });

  it('writes numbers back as dotted quads', () => {
    for (const ip of ['0.0.0.0', '10.0.0.1', '192.168.2.255', '255.255.255.255']) expect(formatIpv4(parseIpv4(ip)!)).toBe(ip);
  });

  it('turns prefix lengths into netmasks and contiguous netmasks back', () => {
    expect([0, 1, 8, 24, 31, 32].map((p) => formatIpv4(prefixMask(p)))).toEqual(['0.0.0.0', '128.0.0.0', '255.0.0.0', '255.255.255.0', '255.255.255.254', '255.255.255.255']);
    for (let p = 0; p <= 32; p++) expect(maskPrefix(prefixMask(p))).toBe(p);
    expect(maskPrefix(parseIpv4('255.0.255.0')!)).toBeUndefined();
    expect(maskPrefix(parseIpv4('0.255.255.255')!)).toBeUndefined();
  });
});

describe('CIDR networks', () => {
  it('reads ADDRESS/PREFIX, keeping the address as written and the network with host bits clear', () => {
    const c = parseCidr('192.168.2.7/24')!;
    expect(cidrString(c)).toBe('192.168.2.0/24');
    expect(formatIpv4(c.address)).toBe('192.168.2.7');
    expect(cidrString(parseCidr('0.0.0.0/0')!)).toBe('0.0.0.0/0');
    for (const bad of ['192.168.2.0', '192.168.2.0/33', '192.168.2.0/', '192.168.2.0/-1', '192.168.2.0/024', '300.1.1.1/8', '/8']) expect(parseCidr(bad), bad).toBeUndefined();
  });

  it('knows membership and the broadcast address', () => {
    const net = cidrOf(parseIpv4('10.0.0.0')!, 24);
    expect(inCidr(net, parseIpv4('10.0.0.254')!)).toBe(true);
    expect(inCidr(net, parseIpv4('10.0.1.1')!)).toBe(false);
    expect(formatIpv4(broadcastOf(net))).toBe('10.0.0.255');
    expect(inCidr(cidrOf(0, 0), parseIpv4('203.0.113.9')!)).toBe(true);
  });

  it('every reader of addresses in be agrees on what one is', () => {
    // share (exports networks, bhyve loader addresses), pxe serve flags, and the DHCP library
    expect(parseNetwork('192.168.2.7/24')).toEqual({ address: '192.168.2.0', prefix: 24 });
    expect(parseCidrFlag('subnet', '192.168.2.0/24')).toEqual(cidrOf(parseIpv4('192.168.2.0')!, 24));
    expect(dhcpCidr('192.168.2.0/24')).toEqual(cidrOf(parseIpv4('192.168.2.0')!, 24));
    expect(parseAddress('10.254.0.2/24')).toEqual({ ip: '10.254.0.2', netmask: '255.255.255.0' });
    expect(ipToInt('192.168.2.1')).toBe(0xc0a80201);
    for (const bad of ['010.0.0.1', '10.0.0.256', '10.0.0']) {
      expect(() => checkIpv4(bad), bad).toThrow(`invalid address '${bad}': expected an IPv4 address like 192.168.2.1`);
      expect(() => parseNetwork(`${bad}/24`), bad).toThrow(`invalid network '${bad}': expected an IPv4 address`);
      expect(() => parseCidrFlag('subnet', `${bad}/24`), bad).toThrow(`--subnet ${bad}/24: not a CIDR network (e.g. 192.168.2.0/24)`);
      expect(() => dhcpCidr(`${bad}/24`), bad).toThrow(DhcpError);
      expect(() => ipToInt(bad), bad).toThrow(`bad IPv4 address "${bad}"`);
      expect(() => parseAddress(`${bad}/24`), bad).toThrow(`invalid address '${bad}'`);
    }
  });
});
