/**
 * RFC 2131 §4.2: "the server MUST use [the client identifier], when present, to identify the
 * client"; chaddr identifies only clients that send none. Crafted requests over loopback.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageType, Opt, messageType } from '../../src/net/dhcp/index.js';
import { LoopbackRelay, ipBytes } from '../helpers/dhcp-loopback.js';

let lo: LoopbackRelay;

beforeEach(async () => {
  lo = await LoopbackRelay.open();
});

afterEach(async () => {
  await lo.close();
});

/** Option 61: type 1 (Ethernet) and a MAC, as PXE ROMs and most clients send it. */
const cid = (mac: string): [number, Buffer] => [Opt.CLIENT_ID, Buffer.from(`01${mac.replace(/:/g, '')}`, 'hex')];

describe('DHCP client identifier (option 61)', () => {
  it('two NICs sending the same client identifier are one client: the same address, one lease', async () => {
    const s = await lo.server();
    const first = await lo.lease(s, '02:00:00:00:61:01', [cid('02:00:00:00:61:ff')]);
    const second = await lo.lease(s, '02:00:00:00:61:02', [cid('02:00:00:00:61:ff')]);
    expect(second.yiaddr).toBe(first.yiaddr);
    expect(s.leases()).toEqual([{ mac: '02:00:00:00:61:02', clientId: '010200000061ff', ip: first.yiaddr, expires: lo.now + 600_000 }]);
    // a third NIC without an identifier is another client
    const third = await lo.lease(s, '02:00:00:00:61:03');
    expect(third.yiaddr).not.toBe(first.yiaddr);
  });

  it('one NIC sending two client identifiers is two clients with two live leases', async () => {
    const s = await lo.server();
    const mac = '02:00:00:00:62:01';
    const a = await lo.lease(s, mac, [cid('02:00:00:00:62:aa')]);
    const b = await lo.lease(s, mac, [cid('02:00:00:00:62:bb')]);
    expect(b.yiaddr).not.toBe(a.yiaddr);
    expect(s.leases().map((l) => [l.clientId, l.ip]).sort()).toEqual([['010200000062aa', a.yiaddr], ['010200000062bb', b.yiaddr]].sort());
    // each identifier renews its own address (RENEWING: ciaddr, no option 54)
    const renew = await lo.ask(s, lo.req(MessageType.REQUEST, mac, [cid('02:00:00:00:62:aa')], { ciaddr: a.yiaddr }));
    expect(messageType(renew)).toBe(MessageType.ACK);
    expect(renew.yiaddr).toBe(a.yiaddr);
    // and a NIC asking for the other identifier's address is refused
    const steal = await lo.ask(s, lo.req(MessageType.REQUEST, mac, [cid('02:00:00:00:62:aa'), [Opt.REQUESTED_IP, ipBytes(b.yiaddr)]]));
    expect(messageType(steal)).toBe(MessageType.NAK);
  });

  it('the journal keeps the identifier: after a restart the client gets its address back from any NIC', async () => {
    const s = await lo.server();
    const ack = await lo.lease(s, '02:00:00:00:63:01', [cid('02:00:00:00:63:ff')]);
    await lo.stopServer(s);
    const journal = readFileSync(join(lo.dir, 'leases'), 'utf8');
    expect(journal).toContain('"cid":"010200000063ff"');
    const again = await lo.server();
    const offer = await lo.ask(again, lo.req(MessageType.DISCOVER, '02:00:00:00:63:02', [cid('02:00:00:00:63:ff')]));
    expect(offer.yiaddr).toBe(ack.yiaddr);
    // the MAC that bound it, without the identifier, is another client
    const other = await lo.ask(again, lo.req(MessageType.DISCOVER, '02:00:00:00:63:01'));
    expect(other.yiaddr).not.toBe(ack.yiaddr);
  });

  it('loads a journal written before identifiers were kept: its leases stay with their MACs', async () => {
    const exp = lo.now + 300_000;
    writeFileSync(join(lo.dir, 'leases'), [
      `{"op":"bind","mac":"02:00:00:00:64:01","ip":"127.0.9.12","exp":${exp},"host":"pc1"}`,
      `{"op":"decline","ip":"127.0.9.13","until":${exp}}`,
      '',
    ].join('\n'));
    const s = await lo.server();
    expect(s.leases()).toEqual([{ mac: '02:00:00:00:64:01', ip: '127.0.9.12', expires: exp, hostname: 'pc1' }]);
    const offer = await lo.ask(s, lo.req(MessageType.DISCOVER, '02:00:00:00:64:01'));
    expect(offer.yiaddr).toBe('127.0.9.12');
    const stranger = await lo.ask(s, lo.req(MessageType.DISCOVER, '02:00:00:00:64:02'));
    expect(['127.0.9.10', '127.0.9.11']).toContain(stranger.yiaddr);
  });
});
