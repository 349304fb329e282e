/**
 * A tiny Linux initramfs: a cpio archive in the "newc" format (what the kernel unpacks), gzip'd.
 * Holds busybox, a /dev/console node and an /init script.
 */
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';

export interface CpioEntry {
  name: string;
  /** File type and permission bits, e.g. 0o100755 (file), 0o040755 (directory), 0o020600 (char device). */
  mode: number;
  data?: Buffer;
  /** Device numbers for device nodes. */
  rdev?: [number, number];
}

function header(e: CpioEntry, ino: number): Buffer {
  const name = Buffer.from(`${e.name}\0`);
  const size = e.data?.length ?? 0;
  const fields = [
    ino, e.mode, 0, 0, 1, 0, size, 0, 0, e.rdev?.[0] ?? 0, e.rdev?.[1] ?? 0, name.length, 0,
  ].map((n) => n.toString(16).padStart(8, '0'));
  const head = Buffer.concat([Buffer.from(`070701${fields.join('')}`), name]);
  return Buffer.concat([head, Buffer.alloc((4 - (head.length % 4)) % 4)]);
}

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 }]) {
    parts.push(header(e, e.name === 'TRAILER!!!' ? 0 : ino++));
    if (e.data) parts.push(e.data, Buffer.alloc((4 - (e.data.length % 4)) % 4));
  }
  return Buffer.concat(parts);
}

/** gzip'd initramfs whose /init runs SCRIPT (a busybox sh script body) and then powers off. */
export function busyboxInitramfs(script: string, busybox = '/bin/busybox'): Buffer {
  const init = `#!/bin/busybox sh\nexport PATH=/bin\n/bin/busybox mount -t devtmpfs dev /dev\n/bin/busybox mount -t proc proc /proc\n${script}\n/bin/busybox poweroff -f\n`;
  return gzipSync(cpioNewc([
    { name: 'bin', mode: 0o040755 },
    { name: 'bin/busybox', mode: 0o100755, data: readFileSync(busybox) },
    { name: 'bin/sh', mode: 0o100755, data: readFileSync(busybox) },
    { name: 'dev', mode: 0o040755 },
    { name: 'dev/console', mode: 0o020600, rdev: [5, 1] },
    { name: 'proc', mode: 0o040755 },
    { name: 'init', mode: 0o100755, data: Buffer.from(init) },
  ]), { level: 6 });
}
