/**
 * The MOUNT protocol, version 3 (RFC 1813 appendix I), over ONC RPC (RFC 5531): ask the
 * portmapper (RFC 1833, version 2 GETPORT) where mountd listens, then MOUNTPROC3_MNT for a path
 * to get its NFSv3 file handle, the value the FreeBSD loader wants in boot.nfsroot.nfshandle.
 * UDP first, TCP (record marking) when the server offers no UDP. Source ports are reserved
 * (< 1024) when we may bind them, as FreeBSD's mountd insists without -n.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { BeError } from '../sys/errors.js';

const PMAP_PROG = 100000;
const PMAP_VERS = 2;
const PMAPPROC_GETPORT = 3;
const MOUNT_PROG = 100005;
const MOUNT_V3 = 3;
const MOUNTPROC3_MNT = 1;
const MOUNTPROC3_UMNT = 3;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const AUTH_NONE = 0;
const AUTH_SYS = 1;

export const MNT3_ERRORS: Record<number, string> = {
  1: 'MNT3ERR_PERM (not owner)',
  2: 'MNT3ERR_NOENT (no such file or directory)',
  5: 'MNT3ERR_IO (I/O error)',
  13: 'MNT3ERR_ACCES (permission denied)',
  20: 'MNT3ERR_NOTDIR (not a directory)',
  22: 'MNT3ERR_INVAL (invalid argument)',
  63: 'MNT3ERR_NAMETOOLONG (name too long)',
  10004: 'MNT3ERR_NOTSUPP (operation not supported)',
  10006: 'MNT3ERR_SERVERFAULT (server fault)',
};

const ACCEPT_ERRORS: Record<number, string> = {
  1: 'PROG_UNAVAIL',
  2: 'PROG_MISMATCH',
  3: 'PROC_UNAVAIL',
  4: 'GARBAGE_ARGS',
  5: 'SYSTEM_ERR',
};

/** XDR encoding of the few types the protocol needs. */
export class XdrWriter {
  private parts: Buffer[] = [];
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  opaque(data: Buffer): this {
    this.u32(data.length);
    this.parts.push(data);
    const pad = (4 - (data.length % 4)) % 4;
    if (pad) this.parts.push(Buffer.alloc(pad));
    return this;
  }
  string(s: string): this {
    return this.opaque(Buffer.from(s, 'utf8'));
  }
  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export class XdrReader {
  private off = 0;
  constructor(private readonly buf: Buffer) {}
  u32(): number {
    if (this.off + 4 > this.buf.length) throw new BeError('short RPC reply');
    const v = this.buf.readUInt32BE(this.off);
    this.off += 4;
    return v;
  }
  opaque(max = 1 << 20): Buffer {
    const len = this.u32();
    if (len > max || this.off + len > this.buf.length) throw new BeError('malformed RPC reply');
    const data = this.buf.subarray(this.off, this.off + len);
    this.off += len + ((4 - (len % 4)) % 4);
    return Buffer.from(data);
  }
}

export interface RpcCall {
  xid: number;
  prog: number;
  vers: number;
  proc: number;
  args: Buffer;
  /** AUTH_SYS as root (uid 0, gid 0) unless false. */
  authSys?: boolean;
  machine?: string;
}

export function encodeCall(c: RpcCall): Buffer {
  const w = new XdrWriter().u32(c.xid).u32(0).u32(2).u32(c.prog).u32(c.vers).u32(c.proc);
  if (c.authSys === false) w.u32(AUTH_NONE).opaque(Buffer.alloc(0));
  else {
    const cred = new XdrWriter().u32(Math.floor(Date.now() / 1000)).string((c.machine ?? 'be').slice(0, 255)).u32(0).u32(0).u32(0).bytes();
    w.u32(AUTH_SYS).opaque(cred);
  }
  w.u32(AUTH_NONE).opaque(Buffer.alloc(0));
  return Buffer.concat([w.bytes(), c.args]);
}

/** Check an RPC reply's header and return a reader positioned at the results. */
export function decodeReply(buf: Buffer, xid: number, what: string): XdrReader | undefined {
  const r = new XdrReader(buf);
  if (r.u32() !== xid) return undefined; // not ours (a late retransmission)
  if (r.u32() !== 1) throw new BeError(`${what}: not an RPC reply`);
  const replyStat = r.u32();
  if (replyStat === 1) {
    const reject = r.u32();
    if (reject === 0) throw new BeError(`${what}: RPC version mismatch`);
    const auth = r.u32();
    throw new BeError(`${what}: refused credentials (auth_stat ${auth}${auth === 1 || auth === 5 ? ': the server may want a reserved source port' : ''})`);
  }
  r.u32(); // verifier flavour
  r.opaque(400); // verifier body
  const accept = r.u32();
  if (accept !== 0) throw new BeError(`${what}: ${ACCEPT_ERRORS[accept] ?? `accept_stat ${accept}`}`);
  return r;
}

export interface RpcOptions {
  /** Total time per call (default 5000 ms); UDP retransmits every timeoutMs/5. */
  timeoutMs?: number;
  /** Bind a reserved source port if we can (default true). */
  reservedPort?: boolean;
}

const RESERVED_LOW = 600;
const RESERVED_HIGH = 1023;

function randomReserved(): number {
  return RESERVED_LOW + Math.floor(Math.random() * (RESERVED_HIGH - RESERVED_LOW + 1));
}

async function bindUdp(reserved: boolean): Promise<dgram.Socket> {
  for (let attempt = 0; attempt < (reserved ? 20 : 1); attempt++) {
    const sock = dgram.createSocket('udp4');
    const port = reserved ? randomReserved() : 0;
    const ok = await new Promise<boolean>((resolve) => {
      sock.once('error', () => resolve(false));
      sock.bind(port, () => resolve(true));
    });
    if (ok) return sock;
    sock.close();
  }
  if (reserved) return bindUdp(false);
  throw new BeError('cannot open a UDP socket');
}

export async function callUdp(host: string, port: number, call: RpcCall, what: string, opts: RpcOptions = {}): Promise<XdrReader> {
  const timeout = opts.timeoutMs ?? 5000;
  const sock = await bindUdp(opts.reservedPort !== false);
  const packet = encodeCall(call);
  try {
    return await new Promise<XdrReader>((resolve, reject) => {
      const send = () => sock.send(packet, port, host, (err) => err && reject(new BeError(`${what}: ${err.message}`)));
      const resend = setInterval(send, Math.max(200, Math.floor(timeout / 5)));
      const timer = setTimeout(() => {
        clearInterval(resend); // no resend on the socket closed below
        reject(new BeError(`${what}: no answer from ${host}:${port}/udp`));
      }, timeout);
      const done = () => {
        clearInterval(resend);
        clearTimeout(timer);
      };
      sock.on('message', (msg) => {
        try {
          const r = decodeReply(msg, call.xid, what);
          if (!r) return;
          done();
          resolve(r);
        } catch (error) {
          done();
          reject(error);
        }
      });
      sock.on('error', (err) => {
        done();
        reject(new BeError(`${what}: ${err.message}`));
      });
      send();
    });
  } finally {
    sock.close();
  }
}

export async function callTcp(host: string, port: number, call: RpcCall, what: string, opts: RpcOptions = {}): Promise<XdrReader> {
  const timeout = opts.timeoutMs ?? 5000;
  const body = encodeCall(call);
  const mark = Buffer.alloc(4);
  mark.writeUInt32BE((0x80000000 | body.length) >>> 0);
  const attempt = (localPort?: number) =>
    new Promise<XdrReader>((resolve, reject) => {
      const sock = net.connect({ host, port, localPort });
      let buf = Buffer.alloc(0);
      const fragments: Buffer[] = [];
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new BeError(`${what}: no answer from ${host}:${port}/tcp`));
      }, timeout);
      const finish = (error: Error | undefined, r?: XdrReader) => {
        clearTimeout(timer);
        sock.destroy();
        if (error) reject(error);
        else resolve(r!);
      };
      sock.on('connect', () => sock.write(Buffer.concat([mark, body])));
      sock.on('data', (chunk) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 4) {
          const header = buf.readUInt32BE(0);
          const len = header & 0x7fffffff;
          if (buf.length < 4 + len) return;
          fragments.push(buf.subarray(4, 4 + len));
          buf = buf.subarray(4 + len);
          if (header & 0x80000000) {
            try {
              const r = decodeReply(Buffer.concat(fragments), call.xid, what);
              if (r) return finish(undefined, r);
              fragments.length = 0;
            } catch (error) {
              return finish(error as Error);
            }
          }
        }
      });
      sock.on('error', (err: NodeJS.ErrnoException) => finish(Object.assign(new BeError(`${what}: ${err.code ?? err.message} (${host}:${port}/tcp)`), { code: err.code })));
    });
  if (opts.reservedPort !== false) {
    for (let i = 0; i < 10; i++) {
      try {
        return await attempt(randomReserved());
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw error;
      }
    }
  }
  return attempt();
}

export interface MountClientOptions extends RpcOptions {
  /** The portmapper's port (default 111). */
  portmapperPort?: number;
  /** Force a transport (default: UDP when mountd offers it, else TCP). */
  transport?: 'udp' | 'tcp';
}

export interface FileHandle {
  server: string;
  path: string;
  handle: Buffer;
  /** Security flavours the server accepts for this export. */
  flavors: number[];
  transport: 'udp' | 'tcp';
}

function newXid(): number {
  return randomBytes(4).readUInt32BE(0);
}

async function call(host: string, port: number, transport: 'udp' | 'tcp', c: Omit<RpcCall, 'xid'>, what: string, opts: RpcOptions): Promise<XdrReader> {
  const full = { ...c, xid: newXid() };
  return transport === 'udp' ? callUdp(host, port, full, what, opts) : callTcp(host, port, full, what, opts);
}

/** PMAPPROC_GETPORT: the port PROG/VERS listens on for PROTOCOL (0: not registered). */
export async function getPort(host: string, prog: number, vers: number, transport: 'udp' | 'tcp', opts: MountClientOptions = {}): Promise<number> {
  const args = new XdrWriter().u32(prog).u32(vers).u32(transport === 'udp' ? IPPROTO_UDP : IPPROTO_TCP).u32(0).bytes();
  const r = await call(host, opts.portmapperPort ?? 111, transport, { prog: PMAP_PROG, vers: PMAP_VERS, proc: PMAPPROC_GETPORT, args, authSys: false }, `portmapper on ${host}`, opts);
  return r.u32();
}

function checkServerAddress(server: string): void {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$/.test(server)) throw new BeError(`invalid server '${server}'`);
}

/** MOUNTPROC3_MNT: the NFSv3 file handle of PATH on SERVER, or the server's refusal as a BeError. */
export async function getFileHandle(server: string, path: string, opts: MountClientOptions = {}): Promise<FileHandle> {
  checkServerAddress(server);
  if (!path.startsWith('/') || path.length > 1024 || /[\0\n]/.test(path)) throw new BeError(`invalid export path '${path}'`);
  let transport = opts.transport ?? 'udp';
  let port = await getPort(server, MOUNT_PROG, MOUNT_V3, transport, opts);
  if (port === 0 && !opts.transport) {
    transport = 'tcp';
    port = await getPort(server, MOUNT_PROG, MOUNT_V3, 'tcp', opts);
  }
  if (port === 0) throw new BeError(`${server}: no MOUNT v3 service registered with the portmapper`);
  const args = new XdrWriter().string(path).bytes();
  const machine = hostname();
  const r = await call(server, port, transport, { prog: MOUNT_PROG, vers: MOUNT_V3, proc: MOUNTPROC3_MNT, args, machine }, `mountd on ${server}`, opts);
  const status = r.u32();
  if (status !== 0) throw new BeError(`${server}:${path}: mount refused: ${MNT3_ERRORS[status] ?? `status ${status}`}`);
  const handle = r.opaque(64);
  const count = r.u32();
  const flavors: number[] = [];
  for (let i = 0; i < count && i < 32; i++) flavors.push(r.u32());
  // We only wanted the handle: tell mountd we are not keeping a mount (best effort).
  await call(server, port, transport, { prog: MOUNT_PROG, vers: MOUNT_V3, proc: MOUNTPROC3_UMNT, args, machine }, `mountd on ${server}`, { ...opts, timeoutMs: 1000 }).catch(() => undefined);
  return { server, path, handle, flavors, transport };
}

/** The loader's spelling of a handle: boot.nfsroot.nfshandle=X<hex>X. */
export function loaderHandle(handle: Buffer): string {
  return `X${handle.toString('hex')}X`;
}
