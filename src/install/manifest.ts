import { BeError } from '../sys/errors.js';

/** One line of a 9.0+ MANIFEST: file, sha256, file count, set name, description, default. */
export interface ManifestEntry {
  file: string;
  sha256: string;
  count: number;
  name: string;
  description: string;
  default: boolean;
}

const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;

/** Parse a MANIFEST (tab-separated). A malformed line is an error naming the line. */
export function parseManifest(text: string, where = 'MANIFEST'): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) return;
    const f = line.split('\t');
    if (f.length < 3 || !/^[A-Za-z0-9_.-]+$/.test(f[0]) || !HEX64.test(f[1].toLowerCase())) {
      throw new BeError(`${where} line ${i + 1} is not 'file<TAB>sha256<TAB>count…': ${line.slice(0, 60)}`);
    }
    out.push({
      file: f[0],
      sha256: f[1].toLowerCase(),
      count: Number(f[2]) || 0,
      name: f[3] ?? f[0].replace(/\.txz$/, ''),
      description: (f[4] ?? '').replace(/^"|"$/g, ''),
      default: (f[5] ?? '').trim() === 'on',
    });
  });
  if (out.length === 0) throw new BeError(`${where} lists no sets`);
  return out;
}

/** Parse a CHECKSUM.MD5 / CHECKSUM.SHA256 file (`MD5 (base.aa) = hex`) into file → digest. */
export function parseChecksums(text: string, algo: 'md5' | 'sha256', where: string): Map<string, string> {
  const tag = algo === 'md5' ? 'MD5' : 'SHA256';
  const hex = algo === 'md5' ? HEX32 : HEX64;
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\w+) \((.+)\) = ([0-9a-fA-F]+)$/.exec(line);
    if (!m || m[1] !== tag || !hex.test(m[3].toLowerCase())) throw new BeError(`${where}: not a ${tag} line: ${line.slice(0, 60)}`);
    out.set(m[2], m[3].toLowerCase());
  }
  if (out.size === 0) throw new BeError(`${where} lists no files`);
  return out;
}

/** The pieces of a split set (prefix.aa, prefix.ab, …) named in a checksum file, in order. */
export function splitPieces(checksums: Map<string, string>, prefix: string): string[] {
  const re = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.[a-z]{2}$`);
  return [...checksums.keys()].filter((f) => re.test(f)).sort();
}
