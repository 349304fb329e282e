/**
 * Ethernet MAC addresses: the one parser `be` has (DHCP reservations, `be wol`, bhyve and PXE
 * boot --mac). Accepts the common spellings — colons or dashes (one kind throughout), Cisco's
 * dotted 5254.00ab.cd0e, or twelve bare hex digits — in either case, and writes the canonical
 * lower-case colon form. Returns undefined for anything else: each caller words its own error.
 * Imports nothing outside src/net.
 */

const SEPARATED = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(\1[0-9a-f]{2}){4}$/;
const DOTTED = /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/;
const BARE = /^[0-9a-f]{12}$/;

/** Any common spelling → "52:54:00:ab:cd:0e", or undefined when TEXT is not a MAC address. */
export function parseMac(text: string): string | undefined {
  const t = text.trim().toLowerCase();
  const digits = SEPARATED.test(t) ? t.replace(/[:-]/g, '') : DOTTED.test(t) ? t.replace(/\./g, '') : BARE.test(t) ? t : undefined;
  return digits?.match(/../g)!.join(':');
}

/** The six bytes of a canonical (or any accepted) spelling, or undefined. */
export function macBytes(text: string): Buffer | undefined {
  const mac = parseMac(text);
  return mac === undefined ? undefined : Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
}

/**
 * Hardware address bytes as "aa:bb:cc:dd:ee:ff" (any length: DHCP's chaddr may be longer than
 * six). Written as characters into one buffer and read out at once: the string comes out flat,
 * so the maps it keys (DHCP's lease table, on every request) hash it without first joining the
 * pieces a concatenation would leave.
 */
export function macString(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n === 0) return '';
  if (3 * n - 1 > macText.length) macText = Buffer.alloc(3 * n - 1);
  let j = 0;
  for (let i = 0; i < n; i++) {
    if (i > 0) macText[j++] = 58; // ':'
    const b = bytes[i];
    macText[j++] = HEX_DIGIT[b >> 4];
    macText[j++] = HEX_DIGIT[b & 15];
  }
  return macText.toString('latin1', 0, j);
}

const HEX_DIGIT = Buffer.from('0123456789abcdef', 'latin1');
let macText = Buffer.alloc(47);
