/** The guest's /etc/fstab: NFS mounts of the BE's children from the server that exports them. */
import { render } from '../render/index.js';
import { BeError } from '../sys/errors.js';

export interface FstabEntry {
  device: string;
  mountpoint: string;
  fstype: string;
  options: string;
  dump: string;
  pass: string;
}

export function checkServer(text: string): string {
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(text)) throw new BeError(`invalid server '${text}': expected a host name or an IPv4 address`);
  return text;
}

export function checkMountOptions(text: string): string {
  if (!/^[A-Za-z0-9_=.:-]+(,[A-Za-z0-9_=.:-]+)*$/.test(text)) throw new BeError(`invalid mount options '${text}': expected a comma-separated list like rw,noatime`);
  return text;
}

/** Lines for the children at RELATIVES ('/var/log', ...) served from SERVER:PREFIX/relative. */
export function nfsFstabBlock(server: string, prefix: string, relatives: string[], options: string): string {
  const base = prefix === '/' ? '' : prefix;
  const entries = relatives.map((rel) => ({ server, remote: `${base}${rel}`, mountpoint: rel, options }));
  return render('fstab-nfs', { entries });
}

/** Parse fstab(5) text into entries, skipping comments and blank lines. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [device, mountpoint, fstype = '', options = '', dump = '0', pass = '0'] = line.split(/[ \t]+/);
    out.push({ device, mountpoint, fstype, options, dump, pass });
  }
  return out;
}
