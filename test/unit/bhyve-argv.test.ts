import { describe, it, expect } from 'vitest';
import { bhyveloadArgv, bhyveArgv, bhyvectlDestroyArgv, nfsRootEnv, parseAddress } from '../../src/boot/bhyve.js';
import { pxeBhyveArgv, UEFI_FIRMWARE } from '../../src/boot/pxe.js';
import { platformMounts } from '../../src/boot/chroot.js';
import { mountdReloadArgv } from '../../src/share/share.js';
import { loaderHandle, encodeCall, decodeReply, XdrWriter } from '../../src/share/mountproto.js';

const HANDLE = Buffer.from('631083b5dea37b8a0a000400000000000a00000000000000', 'hex');

describe('bhyveload(8) with an NFS root', () => {
  // SYNOPSIS: bhyveload [-C] [-S] [-c cons-dev] [-d disk-path] [-e name=value] [-h host-path] [-l os-loader] [-m memsize[K|k|M|m|G|g|T|t]] vmname
  it('passes the loader variables sys/nfs/nfs_diskless.c reads, as the talk does', () => {
    const { ip, netmask } = parseAddress('192.168.2.10/24');
    const env = nfsRootEnv({ mac: '02:01:02:03:04:05', ip, netmask, server: '192.168.2.1', path: '/ROOT/head', handle: HANDLE });
    const argv = bhyveloadArgv({ vm: 'head', hostPath: '/ROOT/head', env, memory: '1024M', console: '/dev/nmdm0A' });
    expect(argv).toEqual([
      'bhyveload', '-c', '/dev/nmdm0A', '-h', '/ROOT/head',
      '-e', 'boot.netif.name=vtnet0',
      '-e', 'boot.netif.hwaddr=02:01:02:03:04:05',
      '-e', 'boot.netif.ip=192.168.2.10',
      '-e', 'boot.netif.netmask=255.255.255.0',
      '-e', 'boot.nfsroot.server=192.168.2.1',
      '-e', `boot.nfsroot.nfshandle=X${HANDLE.toString('hex')}X`,
      '-e', 'boot.nfsroot.nfshandlelen=24',
      '-e', 'boot.nfsroot.path=/ROOT/head',
      '-e', 'vfs.root.mountfrom=nfs:192.168.2.1:/ROOT/head',
      '-e', 'vfs.root.mountfrom.options=rw',
      '-m', '1024M', 'head',
    ]);
    // every -e takes name=value; the VM name is last
    for (let i = 0; i < argv.length; i++) if (argv[i] === '-e') expect(argv[i + 1]).toMatch(/^[a-z.]+=\S+$/);
  });

  it('takes IP/prefix or IP/netmask and adds the gateway only when given', () => {
    expect(parseAddress('10.0.0.5/255.255.0.0')).toEqual({ ip: '10.0.0.5', netmask: '255.255.0.0' });
    expect(() => parseAddress('10.0.0.5/255.0.255.0')).toThrow(/invalid netmask/);
    expect(() => parseAddress('10.0.0.5')).toThrow(/invalid address '10.0.0.5'/);
    const env = nfsRootEnv({ mac: '02:00:00:00:00:01', ip: '10.0.0.5', netmask: '255.0.0.0', gateway: '10.0.0.1', server: '10.0.0.1', path: '/x', handle: HANDLE });
    expect(env.find(([k]) => k === 'boot.netif.gateway')).toEqual(['boot.netif.gateway', '10.0.0.1']);
  });

  it('loader handle is X<hex>X, the form decode_nfshandle() parses', () => {
    expect(loaderHandle(Buffer.from([0x63, 0x10, 0x83]))).toBe('X631083X');
  });
});

describe('bhyve(8) and bhyvectl(8)', () => {
  // SYNOPSIS: bhyve [-AaCDeHhPSuWwxY] [-c [[cpus=]numcpus]...] [-l lpcdev[,conf]] [-m memsize] [-s slot,emulation[,conf]] vmname
  it('virtio-net on the tap and com1 on an nmdm console; UEFI bootrom for PXE', () => {
    expect(bhyveArgv({ vm: 'head', memory: '1G', tap: 'tap0', mac: '02:01:02:03:04:05', console: '/dev/nmdm0A' })).toEqual([
      'bhyve', '-c', '1', '-m', '1G', '-A', '-H', '-P',
      '-s', '0:0,hostbridge', '-s', '1:0,lpc', '-s', '2:0,virtio-net,tap0,mac=02:01:02:03:04:05',
      '-l', 'com1,/dev/nmdm0A', 'head',
    ]);
    const pxe = pxeBhyveArgv({ vm: 'pxe1', tap: 'tap3', memory: '512M' });
    expect(pxe.slice(-3)).toEqual(['-l', `bootrom,${UEFI_FIRMWARE}`, 'pxe1']);
    expect(UEFI_FIRMWARE).toBe('/usr/local/share/uefi-firmware/BHYVE_UEFI.fd');
    expect(pxe).toContain('2:0,virtio-net,tap3');
    expect(() => pxeBhyveArgv({ vm: 'x', tap: 'em0' })).toThrow(/invalid tap interface 'em0'/);
    expect(() => pxeBhyveArgv({ vm: 'x', memory: 'lots' })).toThrow(/invalid memory size 'lots'/);
    expect(() => pxeBhyveArgv({ vm: 'bad name' })).toThrow(/invalid VM name 'bad name'/);
  });
  // SYNOPSIS: bhyvectl --vm=<vmname> [--destroy] ...
  it('destroys the VM by name', () => {
    expect(bhyvectlDestroyArgv('head')).toEqual(['bhyvectl', '--destroy', '--vm=head']);
  });
});

describe('platform argv', () => {
  it('chroot mounts devfs on FreeBSD, proc and devtmpfs on Linux', () => {
    expect(platformMounts('freebsd', '/mnt').map((m) => m.argv)).toEqual([['mount', '-t', 'devfs', 'devfs', '/mnt/dev']]);
    expect(platformMounts('zfs-fuse', '/mnt').map((m) => m.argv)).toEqual([
      ['mount', '-t', 'proc', 'proc', '/mnt/proc'],
      ['mount', '-t', 'devtmpfs', 'devtmpfs', '/mnt/dev'],
    ]);
  });
  // rc.subr refuses `reload` when mountd_enable is unset (nfsd starts mountd by force_depend): onereload
  it('mountd reload through service(8)', () => {
    expect(mountdReloadArgv()).toEqual(['service', 'mountd', 'onereload']);
  });
});

describe('ONC RPC encoding', () => {
  it('builds a CALL with AUTH_SYS and reads an accepted reply', () => {
    const call = encodeCall({ xid: 7, prog: 100005, vers: 3, proc: 1, args: new XdrWriter().string('/x').bytes(), machine: 'm' });
    expect(call.readUInt32BE(0)).toBe(7);
    expect(call.readUInt32BE(4)).toBe(0); // CALL
    expect(call.readUInt32BE(8)).toBe(2); // RPC version 2
    expect([call.readUInt32BE(12), call.readUInt32BE(16), call.readUInt32BE(20)]).toEqual([100005, 3, 1]);
    expect(call.readUInt32BE(24)).toBe(1); // AUTH_SYS
    const reply = new XdrWriter().u32(7).u32(1).u32(0).u32(0).opaque(Buffer.alloc(0)).u32(0).u32(13).bytes();
    expect(decodeReply(reply, 7, 't')!.u32()).toBe(13);
    expect(decodeReply(reply, 8, 't')).toBeUndefined();
    const denied = new XdrWriter().u32(7).u32(1).u32(1).u32(1).u32(5).bytes();
    expect(() => decodeReply(denied, 7, 'mountd')).toThrow(/mountd: refused credentials/);
  });
});
