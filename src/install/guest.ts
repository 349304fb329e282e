import { BeError } from '../sys/errors.js';
import { render } from '../render/index.js';

/** The guest configuration `be install` writes into a BE after extraction. */

const RC_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface RcEntry {
  key: string;
  value: string;
}

export function checkHostname(name: string): string {
  if (!HOSTNAME.test(name)) throw new BeError(`bad hostname '${name}' (letters, digits, '-' and dots)`);
  return name;
}

/** The BE's last name component, made into a hostname (bd/be/test → test). */
export function defaultHostname(dataset: string): string {
  const last = dataset.split('/').pop() ?? 'freebsd';
  const cleaned = last.replace(/[^A-Za-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  return cleaned === '' ? 'freebsd' : cleaned.slice(0, 63);
}

/** KEY=VALUE pairs (rc.conf variables); a later KEY replaces an earlier one. */
export function parseRcPairs(input: string[] | Record<string, string>): RcEntry[] {
  const pairs: Array<[string, string]> = Array.isArray(input)
    ? input.map((kv) => {
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new BeError(`bad rc.conf entry '${kv}' (expected KEY=VALUE)`);
        return [kv.slice(0, eq), kv.slice(eq + 1)];
      })
    : Object.entries(input).map(([k, v]) => [k, String(v)]);
  const out = new Map<string, string>();
  for (const [key, value] of pairs) {
    if (!RC_KEY.test(key)) throw new BeError(`bad rc.conf variable '${key}'`);
    if (/[\n\r\0]/.test(value)) throw new BeError(`rc.conf value of ${key} has a line break`);
    out.delete(key);
    out.set(key, value);
  }
  return [...out].map(([key, value]) => ({ key, value }));
}

export interface GuestFile {
  /** Path inside the BE. */
  path: string;
  content: string;
  mode: number;
}

export interface GuestConfig {
  /** The BE dataset (root filesystem of the guest). */
  dataset: string;
  hostname: string;
  rc: RcEntry[];
  release?: string;
  /** User template directory. */
  templates?: string;
}

/**
 * /etc/rc.conf, /etc/fstab and /boot/loader.conf for a ZFS-rooted BE.
 *
 * Neither fstab nor loader.conf names the BE's own dataset: FreeBSD's loader takes the root
 * from vfs.root.mountfrom only when it is unset, then from fstab's `/` line, and only without
 * one from the boot environment it is booting (stand/common/boot.c `getrootmount`, with currdev
 * from stand/libsa/zfs/zfs.c `zfs_fmtdev` or stand/lua/menu.lua `bootenvSet`); loader.conf
 * overrides the loader's own choice (stand/lua/config.lua). A pinned name would make every
 * clone of this BE boot the original (templates/loader.conf.hbs says more).
 */
export function guestFiles(cfg: GuestConfig): GuestFile[] {
  const rc = cfg.rc.some((e) => e.key.startsWith('ifconfig_')) ? cfg.rc : [{ key: 'ifconfig_DEFAULT', value: 'DHCP' }, ...cfg.rc];
  const data = { dataset: cfg.dataset, hostname: cfg.hostname, rc, release: cfg.release, zfs: true, entries: [], loader: [] };
  const opts = { templateDir: cfg.templates };
  return [
    { path: '/etc/rc.conf', content: render('rc.conf', data, opts), mode: 0o644 },
    { path: '/etc/fstab', content: render('fstab', data, opts), mode: 0o644 },
    { path: '/boot/loader.conf', content: render('loader.conf', data, opts), mode: 0o644 },
  ];
}
