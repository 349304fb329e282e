/**
 * What a read request gets: a memory file the caller provides, else a file under the root
 * directory (confined to it by paths.ts), converted to netascii in memory when asked.
 */
import { ErrorCode, toNetascii } from './packet.js';
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { closeFd, openInRoot, PathError, type OpenedFile } from './paths.js';
import type { TftpFileContent, TftpFileProvider } from './config.js';

/** Served content: a buffer, or an open file read block by block. */
export type Found = { content: Buffer; opened?: undefined } | { content?: undefined; opened: OpenedFile };

/** Why a request is refused: the error sent and the result logged. */
export interface Refusal {
  code: number;
  message: string;
  result: string;
}

export interface ContentSources {
  files?: TftpFileProvider;
  /** The root directory's real path, when one is served. */
  rootReal?: string;
  maxNetasciiBytes: number;
}

const readFd = promisify(read);

function toBuffer(found: TftpFileContent): Buffer {
  if (typeof found === 'string') return Buffer.from(found, 'utf8');
  return Buffer.isBuffer(found) ? found : Buffer.from(found.buffer, found.byteOffset, found.byteLength);
}

/** Find REL (a cleaned relative path): 1. memory files, 2. the root directory. */
export async function findContent(rel: string, mode: 'octet' | 'netascii', from: ContentSources): Promise<Found | Refusal> {
  let content: Buffer | undefined;
  if (from.files) {
    let found: TftpFileContent | undefined;
    try {
      found = from.files instanceof Map ? from.files.get(rel) : await from.files(rel);
    } catch {
      found = undefined;
    }
    if (found !== undefined) content = toBuffer(found);
  }
  if (!content) {
    if (from.rootReal === undefined) return { code: ErrorCode.FILE_NOT_FOUND, message: 'file not found', result: 'refused: file not found' };
    let opened: OpenedFile;
    try {
      opened = await openInRoot(from.rootReal, rel);
    } catch (e) {
      if (e instanceof PathError && e.kind === 'not-found') return { code: ErrorCode.FILE_NOT_FOUND, message: 'file not found', result: 'refused: file not found' };
      return { code: ErrorCode.ACCESS_VIOLATION, message: 'access violation', result: `refused: ${(e as Error).message}` };
    }
    if (mode === 'octet') return { opened };
    try {
      if (opened.size > from.maxNetasciiBytes) {
        return { code: ErrorCode.DISK_FULL, message: 'file too large for netascii', result: 'refused: file too large for netascii' };
      }
      const buffer = Buffer.allocUnsafe(opened.size);
      const { bytesRead } = await readFd(opened.fd, buffer, 0, opened.size, 0);
      content = buffer.subarray(0, bytesRead);
    } finally {
      await closeFd(opened.fd);
    }
  }
  return { content: mode === 'netascii' ? toNetascii(content) : content };
}
