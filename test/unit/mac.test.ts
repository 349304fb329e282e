// src/net/mac.ts: the one MAC parser, and every reader of MACs in be agreeing with it.
import { describe, expect, it } from 'vitest';
import { macBytes, macString, parseMac } from '../../src/net/mac.js';
import { checkMac } from '../../src/boot/method.js';
import { normalizeMac } from '../../src/pxe/settings.js';
import { parseMac as dhcpMac } from '../../src/net/dhcp/index.js';
import { magicPacket } from '../../src/boot/wol.js';

const SPELLINGS = ['52:54:00:AB:cd:0e', '52-54-00-ab-cd-0e', '5254.00ab.cd0e', '525400abcd0e', ' 52:54:00:ab:cd:0e '];
const BAD = ['52:54:00:ab:cd', '52:54:00:ab:cd:0e:ff', '52:54-00:ab:cd:0e', 'zz:54:00:ab:cd:0e', '5254.00ab.cd0', '525400abcd0', '2:54:0:ab:cd:e', ''];

describe('MAC addresses', () => {
  it('reads the common spellings into the lower-case colon form, and nothing else', () => {
    for (const m of SPELLINGS) expect(parseMac(m), m).toBe('52:54:00:ab:cd:0e');
    for (const m of BAD) expect(parseMac(m), m).toBeUndefined();
  });

  it('converts to and from bytes (chaddr of any length prints the same way)', () => {
    expect([...macBytes('5254.00ab.cd0e')!]).toEqual([0x52, 0x54, 0x00, 0xab, 0xcd, 0x0e]);
    expect(macBytes('nope')).toBeUndefined();
    expect(macString(Buffer.from([0x52, 0x54, 0, 0xab, 0xcd, 0x0e]))).toBe('52:54:00:ab:cd:0e');
    expect(macString(Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]))).toBe('01:02:03:04:05:06:07:08');
  });

  it('bhyve/pxe --mac, pxe --host, be wol and DHCP reservations accept and refuse the same MACs', () => {
    for (const m of SPELLINGS) {
      expect(checkMac(m)).toBe('52:54:00:ab:cd:0e');
      expect(normalizeMac(m)).toBe('52:54:00:ab:cd:0e');
      expect(macString(dhcpMac(m))).toBe('52:54:00:ab:cd:0e');
      expect(magicPacket(m).subarray(6, 12).toString('hex')).toBe('525400abcd0e');
    }
    for (const m of BAD) {
      expect(() => checkMac(m), m).toThrow(`invalid MAC address '${m}': expected 02:01:02:03:04:05`);
      expect(() => normalizeMac(m), m).toThrow(`MAC ${m}: not a MAC address (e.g. 52:54:00:12:34:56)`);
      expect(() => dhcpMac(m), m).toThrow(`bad MAC address ${JSON.stringify(m)}`);
    }
  });
});
