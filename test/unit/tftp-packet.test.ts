import { describe, expect, it } from 'vitest';
import {
  decodePacket,
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
  ErrorCode,
  Opcode,
  TftpDecodeError,
  toNetascii,
} from '../../src/net/tftp/index.js';

// Datagrams captured from real programs on loopback.
const hex = (h: string): Buffer => Buffer.from(h, 'hex');
/** tftp-hpa 5.2: `get pxelinux.0` in octet mode, no options. */
const HPA_RRQ = hex('00017078656c696e75782e30006f6374657400');
/** atftp 0.8: `-g -r boot/loader.efi --option "blksize 1468" --option "windowsize 16" --option "tsize 0"`. */
const ATFTP_RRQ = hex('0001626f6f742f6c6f616465722e656669006f63746574007473697a65003000626c6b73697a6500313436380077696e646f7773697a6500313600');
/** curl 7.88: `--tftp-blksize 1024 tftp://host/pxelinux.cfg/default`. */
const CURL_RRQ = hex('00017078656c696e75782e6366672f64656661756c74006f63746574007473697a65003000626c6b73697a6500313032340074696d656f7574003600');
/** npm tftp 0.1.2 client: sends its timeout in milliseconds and a rollover option. */
const NPM_RRQ = hex('00017078656c696e75782e30006f6374657400626c6b73697a6500313436380074696d656f7574003530300077696e646f7773697a65003400726f6c6c6f7665720030007473697a65003000');
/** tftp-hpa: `put cap.mjs up.txt`. */
const HPA_WRQ = hex('000275702e747874006f6374657400');
/** tftpd-hpa's OACK to blksize 1468 + tsize 0 for a 6-byte file. */
const HPA_OACK = hex('0006626c6b73697a650031343638007473697a65003600');
/** tftpd-hpa's answer to a missing file. */
const HPA_NOT_FOUND = hex('0005000146696c65206e6f7420666f756e6400');

describe('tftp packet codec on real client bytes', () => {
  it('decodes a plain tftp-hpa read request', () => {
    expect(decodePacket(HPA_RRQ)).toEqual({ op: Opcode.RRQ, filename: 'pxelinux.0', mode: 'octet', options: [] });
  });

  it('decodes atftp options in the order sent', () => {
    const p = decodePacket(ATFTP_RRQ);
    expect(p).toEqual({
      op: Opcode.RRQ,
      filename: 'boot/loader.efi',
      mode: 'octet',
      options: [
        { name: 'tsize', value: '0' },
        { name: 'blksize', value: '1468' },
        { name: 'windowsize', value: '16' },
      ],
    });
  });

  it('decodes curl and npm tftp requests', () => {
    const c = decodePacket(CURL_RRQ);
    expect(c.op === Opcode.RRQ && c.filename).toBe('pxelinux.cfg/default');
    expect(c.op === Opcode.RRQ && c.options.map((o) => `${o.name}=${o.value}`)).toEqual(['tsize=0', 'blksize=1024', 'timeout=6']);
    const n = decodePacket(NPM_RRQ);
    expect(n.op === Opcode.RRQ && n.options.map((o) => o.name)).toEqual(['blksize', 'timeout', 'windowsize', 'rollover', 'tsize']);
  });

  it('decodes a write request as WRQ', () => {
    expect(decodePacket(HPA_WRQ)).toMatchObject({ op: Opcode.WRQ, filename: 'up.txt', mode: 'octet' });
  });

  it('encodes an OACK byte-identical to tftpd-hpa and decodes it back', () => {
    const options = [
      { name: 'blksize', value: '1468' },
      { name: 'tsize', value: '6' },
    ];
    expect(encodeOack(options).equals(HPA_OACK)).toBe(true);
    expect(decodePacket(HPA_OACK)).toEqual({ op: Opcode.OACK, options });
  });

  it('decodes a tftpd-hpa error and encodes the same bytes', () => {
    expect(decodePacket(HPA_NOT_FOUND)).toEqual({ op: Opcode.ERROR, code: ErrorCode.FILE_NOT_FOUND, message: 'File not found' });
    expect(encodeError(1, 'File not found').equals(HPA_NOT_FOUND)).toBe(true);
  });

  it('re-encodes requests to the bytes real clients sent', () => {
    expect(encodeRequest(Opcode.RRQ, 'pxelinux.0', 'octet').equals(HPA_RRQ)).toBe(true);
    const p = decodePacket(ATFTP_RRQ);
    if (p.op !== Opcode.RRQ) throw new Error('not a request');
    expect(encodeRequest(Opcode.RRQ, p.filename, p.mode, p.options).equals(ATFTP_RRQ)).toBe(true);
  });

  it('round-trips DATA and ACK with 16-bit block numbers', () => {
    const d = encodeData(65536 + 7, Buffer.from('abc'));
    expect([...d]).toEqual([0, 3, 0, 7, 0x61, 0x62, 0x63]);
    expect(decodePacket(d)).toMatchObject({ op: Opcode.DATA, block: 7 });
    expect([...encodeAck(65535)]).toEqual([0, 4, 0xff, 0xff]);
    expect(decodePacket(encodeAck(0))).toEqual({ op: Opcode.ACK, block: 0 });
  });

  it('lower-cases option names and modes, keeps the first of duplicate options', () => {
    const p = decodePacket(Buffer.from('\0\x01f\0OCTET\0BlkSize\x00512\0blksize\x001024\0', 'latin1'));
    expect(p).toEqual({ op: Opcode.RRQ, filename: 'f', mode: 'octet', options: [{ name: 'blksize', value: '512' }] });
  });

  it('bounds the option list of one request', () => {
    const opts = Array.from({ length: 500 }, (_, i) => `o${i}\0${i}\0`).join('');
    const p = decodePacket(Buffer.from(`\0\x01f\0octet\0${opts}`, 'latin1'));
    expect(p.op === Opcode.RRQ && p.options.length).toBe(32);
  });

  it('refuses truncated and unknown packets with a decode error', () => {
    const bad = ['', '\0', '\0\x03\0', '\0\x04\x01', '\0\x05\0', '\0\x01name-without-nul', '\0\x01\0octet\0', '\0\x01f\0octet\0blksize\0', '\0\x09\0\0', '\xff\xff'];
    for (const b of bad) expect(() => decodePacket(Buffer.from(b, 'latin1')), JSON.stringify(b)).toThrow(TftpDecodeError);
  });

  it('converts to netascii: LF to CR LF, bare CR to CR NUL', () => {
    expect([...toNetascii(Buffer.from('a\nb\rc'))]).toEqual([0x61, 0x0d, 0x0a, 0x62, 0x0d, 0x00, 0x63]);
  });
});
