/** `be wol`: the magic packet as it arrives on a UDP socket, and refusals. */
import { describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { execa } from 'execa';
import { be, BE_BIN } from '../helpers/cli.js';
import { makeLan } from '../helpers/netns.js';

describe('be wol', () => {
  it('sends 6 x 0xff and 16 x the MAC in one datagram to --broadcast:--port', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const port = sock.address().port;
    const got = new Promise<Buffer>((resolve) => sock.once('message', (m) => resolve(m)));
    try {
      const r = await be(['wol', '52-54-00-AB-cd-0e', '--broadcast', '127.0.0.1', '--port', String(port)]);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(`sent magic packet for 52:54:00:ab:cd:0e to 127.0.0.1:${port}\n`);
      const packet = await got;
      const mac = Buffer.from([0x52, 0x54, 0x00, 0xab, 0xcd, 0x0e]);
      expect(packet).toEqual(Buffer.concat([Buffer.alloc(6, 0xff), ...Array.from({ length: 16 }, () => mac)]));
      expect(packet.length).toBe(102);
    } finally {
      sock.close();
    }
  });

  it('broadcasts to 255.255.255.255:9 by default: another namespace on the LAN receives it', async () => {
    const lan = await makeLan(1);
    try {
      await execa('ip', ['-n', lan.client, 'addr', 'add', `${lan.prefix}.50/24`, 'dev', 'br0']);
      await execa('ip', ['-n', lan.client, 'route', 'add', 'default', 'dev', 'br0']);
      // a listener on the sleeping machine's side prints the first datagram's bytes as hex
      const listener = execa('ip', ['netns', 'exec', lan.servers[0], process.execPath, '-e',
        "const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>{console.log(r.address+' '+m.toString('hex'));process.exit(0)});s.bind(9,()=>console.log('ready'))"],
      { reject: false, timeout: 20_000, buffer: false });
      await new Promise<void>((resolve) => listener.stdout!.once('data', () => resolve()));
      let out = '';
      listener.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      const r = await execa('ip', ['netns', 'exec', lan.client, process.execPath, BE_BIN, 'wol', '0a:1b:2c:3d:4e:5f'], { reject: false });
      expect(r.stdout).toBe('sent magic packet for 0a:1b:2c:3d:4e:5f to 255.255.255.255:9');
      await listener;
      expect(out.trim()).toBe(`${lan.prefix}.50 ${'ff'.repeat(6)}${'0a1b2c3d4e5f'.repeat(16)}`);
    } finally {
      await lan.destroy();
    }
  }, 30_000);

  it('refuses a bad MAC, broadcast address or port with one line', async () => {
    for (const [args, message] of [
      [['wol', '52:54:00:ab:cd'], 'be: MAC 52:54:00:ab:cd: not a MAC address (e.g. 52:54:00:12:34:56)\n'],
      [['wol', '52:54:00:ab:cd:0g'], 'be: MAC 52:54:00:ab:cd:0g: not a MAC address (e.g. 52:54:00:12:34:56)\n'],
      [['wol', '52:54:00:ab:cd:0e', '--broadcast', 'everyone'], 'be: --broadcast everyone: not an IPv4 address\n'],
      [['wol', '52:54:00:ab:cd:0e', '--port', '70000'], 'be: --port 70000: not a UDP port (1-65535)\n'],
    ] as const) {
      const r = await be([...args]);
      expect(r.exitCode).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(message);
    }
  });
});
