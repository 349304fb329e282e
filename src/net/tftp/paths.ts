/**
 * Where a requested file name may lead. Two steps:
 *  1. `requestPath` (pure): the name as the client sent it → a relative path of plain components,
 *     or a refusal. Leading '/' characters are stripped, so "/pxelinux.0" and "pxelinux.0" name
 *     the same file under the root (as tftpd-hpa does with -s): clients cannot name anything
 *     outside the root, absolute or not. Refused outright: a ".." component, a backslash, NUL and
 *     other control characters, bytes that are not UTF-8, and a name with no components.
 *  2. `openInRoot` (filesystem): resolve symlinks with realpath and require the result to be the
 *     root itself or below it on a whole-component boundary ("/srv/tftp-evil" is not inside
 *     "/srv/tftp"), then open that resolved path without following symlinks and check that the
 *     descriptor is a regular file (and, where /proc exists, that it is still the path we checked).
 */
import { close, constants, fstat, open, promises as fsp } from 'node:fs';
import { sep } from 'node:path';
import { promisify } from 'node:util';

export type PathRefusal = 'refused' | 'not-found';

export class PathError extends Error {
  readonly kind: PathRefusal;
  constructor(kind: PathRefusal, message: string) {
    super(message);
    this.name = 'PathError';
    this.kind = kind;
  }
}

/** The request's file name as a '/'-joined relative path, or a `PathError`. */
export function requestPath(filename: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\\ufffd]/.test(filename)) throw new PathError('refused', 'forbidden character in file name');
  const parts: string[] = [];
  for (const part of filename.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new PathError('refused', 'parent directory in file name');
    parts.push(part);
  }
  if (parts.length === 0) throw new PathError('refused', 'file name names no file');
  return parts.join('/');
}

/** True when `real` is `root` or lies below it on a component boundary. */
export function insideRoot(root: string, real: string): boolean {
  if (real === root) return true;
  const prefix = root.endsWith(sep) ? root : root + sep;
  return real.startsWith(prefix);
}

export interface OpenedFile {
  /**
   * A raw descriptor, not a FileHandle: it is handed to the thread that runs the transfer, which
   * reads it and closes it (a FileHandle would close it again when collected here).
   */
  fd: number;
  size: number;
  realPath: string;
}

const openFd = promisify(open);
const fstatFd = promisify(fstat);

/** Close a descriptor this module opened; errors (already closed) are ignored. */
export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve) => close(fd, () => resolve()));
}

/** Open `rel` (from `requestPath`) under the already-resolved `rootReal`, refusing escapes. */
export async function openInRoot(rootReal: string, rel: string): Promise<OpenedFile> {
  let real: string;
  try {
    real = await fsp.realpath(rootReal === sep ? sep + rel : rootReal + sep + rel);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new PathError('not-found', 'file not found');
    if (code === 'ELOOP') throw new PathError('refused', 'symlink loop');
    throw new PathError('refused', 'file not accessible');
  }
  if (!insideRoot(rootReal, real)) throw new PathError('refused', 'path leaves the root');
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not park a thread-pool thread forever.
    fd = await openFd(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PathError('not-found', 'file not found');
    throw new PathError('refused', 'file not accessible');
  }
  try {
    const st = await fstatFd(fd);
    if (!st.isFile()) throw new PathError('refused', 'not a regular file');
    if (process.platform === 'linux') {
      const now = await fsp.readlink(`/proc/self/fd/${fd}`).catch(() => real);
      if (now !== real) throw new PathError('refused', 'path changed while opening');
    }
    return { fd, size: st.size, realPath: real };
  } catch (e) {
    await closeFd(fd);
    throw e instanceof PathError ? e : new PathError('refused', 'file not accessible');
  }
}
