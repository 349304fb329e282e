/**
 * A standalone, read-only TFTP server (RFC 1350, 2347, 2348, 2349, 7440) and its packet codec.
 * It knows nothing of boot environments; `be pxe serve` composes it with the DHCP server.
 *
 *   import { createTftpServer } from '../net/tftp/index.js';
 *   const server = createTftpServer({
 *     root: '/srv/tftp',                         // served read-only; names never leave it
 *     address: '192.0.2.1', port: 69,            // bind; default 0.0.0.0:69
 *     files: new Map([['pxelinux.cfg/default', renderedConfig]]), // or (path) => Buffer | string | undefined
 *     log: (line) => console.log(line),          // one line per transfer or refused request
 *   });
 *   await server.start();                        // bound: drop privileges now (setgid, setuid)
 *   ...
 *   await server.stop();                         // ends transfers, closes every socket
 *
 * Requests: RRQ in octet or netascii mode. WRQ gets error 2 (access violation); unknown modes
 * error 4. File names: leading '/' is stripped (names are always relative to the root, as with
 * tftpd-hpa -s); "..", backslashes, control characters and non-UTF-8 names are refused with
 * error 2; the real path (symlinks resolved) must lie under the root's real path on a component
 * boundary. `files` is consulted first with the cleaned name ("a/b", no leading slash).
 *
 * Options: blksize up to `maxBlksize` (default: bound interface's MTU − 32, or 1468 on the
 * wildcard address), windowsize up to `maxWindowsize` (64) and `maxWindowBytes` (1 MiB) per
 * window, timeout 1..`maxTimeoutSeconds` (30) echoed or ignored, tsize answered with the size.
 * Invalid or unknown options are left out of the OACK.
 *
 * Transfers: each on a fresh ephemeral port; packets from any other address:port get error 5
 * and do not disturb it; retransmission after `timeoutMs` (1 s, or the negotiated timeout),
 * doubling up to `maxTimeoutMs` (8 s), giving up after `retries` (5); block numbers wrap from
 * 65535 to 0. At most `maxTransfers` (128) at once: when full, the oldest transfer whose client
 * never answered is evicted, otherwise the request gets error 0. Files are read ahead in ~64 KiB
 * chunks (bounded per transfer), never loaded whole (netascii files up to `maxNetasciiBytes`
 * are converted in memory).
 *
 * Threads: transfers run on worker threads (`workers`, default one per CPU) when the built worker
 * entry is there (tftp-worker.js beside the server's built code, or `workerScript`), else on the
 * server's thread. The request port, path confinement and file opening stay on the server's
 * thread; a worker gets the open descriptor and binds the transfer's port. Workers share the
 * process's credentials (dropping root after start() drops it for them) and the error rate limit.
 *
 * Duplicate ACKs: lock-step transfers resend only on the timer (RFC 1123 §4.2.3.1, no Sorcerer's
 * Apprentice); windowed ones resend a window once for a duplicate ACK of its position (RFC 7440).
 * On the request port, anything that is no request except an ERROR gets error 4, never larger
 * than the packet that came in; error replies to one source address are limited to
 * `maxErrorsPerSecond` (50) a second, in a fixed-size table.
 *
 * Errors: bad options and bind failures throw a TftpError ("tftp: …", naming the value); the
 * library imports nothing outside src/net, so its callers map these to their own error type.
 */
export { createTftpServer, TftpServer, blksizeCapFor } from './server.js';
export { TftpError } from './errors.js';
export type { TftpServerOptions, TftpFileProvider, TftpFileContent, TftpTransferRecord, TftpServerStats } from './server.js';
export {
  Opcode,
  ErrorCode,
  decodePacket,
  encodeRequest,
  encodeData,
  encodeAck,
  encodeError,
  encodeOack,
  toNetascii,
  TftpDecodeError,
} from './packet.js';
export type { TftpPacket, TftpOption, RequestPacket, DataPacket, AckPacket, ErrorPacket, OackPacket } from './packet.js';
export { negotiate, MIN_BLKSIZE, MAX_BLKSIZE, DEFAULT_BLKSIZE } from './options.js';
export type { NegotiationLimits, Negotiated } from './options.js';
export { requestPath, insideRoot } from './paths.js';
