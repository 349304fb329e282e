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

/** Hardware address bytes as "aa:bb:cc:dd:ee:ff" (any length: DHCP's chaddr may be longer than six). */
export function macString(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += i ? `:${HEX[bytes[i]]}` : HEX[bytes[i]];
  return s;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));
