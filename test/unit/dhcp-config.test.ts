/**
 * Where broadcast replies go and which interface is served, as checkConfig derives them from the
 * host's interfaces (loopback here: 127.0.0.1/8 on lo).
 */
import { describe, expect, it } from 'vitest';
import { checkConfig } from '../../src/net/dhcp/config.js';
import { DhcpError } from '../../src/net/dhcp/index.js';

describe('DHCP server config', () => {
  it('serves the interface holding serverIp, and broadcasts to 255.255.255.255 from its address on Linux', () => {
    const c = checkConfig({ serverIp: '127.0.0.1', platform: 'linux' });
    expect(c.iface).toMatchObject({ name: 'lo', address: '127.0.0.1', holdsServer: true });
    expect(c.broadcastTo).toBe('255.255.255.255');
  });

  it('on FreeBSD, broadcasts to the served interface\'s subnet broadcast (in_pcbconnect_setup rewrites 255.255.255.255 to the first interface\'s)', () => {
    expect(checkConfig({ serverIp: '127.0.0.1', platform: 'freebsd' }).broadcastTo).toBe('127.255.255.255');
  });

  it('with an explicit bind address there is no interface socket, and broadcasts go to the subnet broadcast', () => {
    const c = checkConfig({ serverIp: '127.0.0.1', address: '127.0.0.1', platform: 'linux' });
    expect(c.iface).toBeUndefined();
    expect(c.broadcastTo).toBe('127.255.255.255');
  });

  it('refuses an interface that does not exist with its own error type, naming it', () => {
    expect(() => checkConfig({ serverIp: '127.0.0.1', interface: 'bdhnone0' })).toThrow(DhcpError);
    expect(() => checkConfig({ serverIp: '127.0.0.1', interface: 'bdhnone0' })).toThrow('interface: no such interface bdhnone0');
  });
});
