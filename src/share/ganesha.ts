/**
 * nfs-ganesha: the Linux way to serve a BE over NFS. `be` keeps its EXPORT blocks in a file of
 * its own (be-exports.conf next to ganesha.conf), %include'd from ganesha.conf, one marked block
 * per BE. ganesha re-reads its exports on SIGHUP (as its systemd unit's ExecReload does).
 */
import { render } from '../render/index.js';
import { BeError } from '../sys/errors.js';
import type { ShareSpec } from './spec.js';

/** Export ids `be` hands out start here, clear of hand-written exports in ganesha.conf. */
export const FIRST_EXPORT_ID = 1000;

export interface GaneshaExport {
  path: string;
  pseudo: string;
}

/** Map exports(5) -maproot to ganesha's Squash / Anonymous_Uid. PASSWD is /etc/passwd's text. */
export function squashFor(spec: ShareSpec, passwd: string): { squash: string; anonUid?: number; anonGid?: number } {
  const m = spec.maproot;
  if (m === undefined) return { squash: 'Root_Squash' };
  const [user, group] = m.split(':');
  let uid: number;
  let gid: number | undefined = group !== undefined && /^\d+$/.test(group) ? Number(group) : undefined;
  if (/^\d+$/.test(user)) uid = Number(user);
  else if (user === 'root') uid = 0;
  else {
    const entry = passwd.split('\n').map((l) => l.split(':')).find((f) => f[0] === user);
    if (!entry) throw new BeError(`unknown maproot user '${user}'`);
    uid = Number(entry[2]);
    gid = gid ?? Number(entry[3]);
  }
  if (uid === 0) return { squash: 'No_Root_Squash' };
  return { squash: 'Root_Squash', anonUid: uid, anonGid: gid ?? uid };
}

/** Pseudo path for NFSv4: the path below the V4 root when one is given, else the path itself. */
export function pseudoPath(path: string, v4Root?: string): string {
  if (!v4Root || v4Root === '/') return path;
  if (path === v4Root) return '/';
  return path.startsWith(`${v4Root}/`) ? path.slice(v4Root.length) : path;
}

/** Export_Id of each EXPORT's Path in TEXT. */
export function exportIds(text: string): Map<string, number> {
  const ids = new Map<string, number>();
  for (const chunk of text.split(/\bEXPORT\s*\{/i).slice(1)) {
    const id = /\bExport_Id\s*=\s*(\d+)/i.exec(chunk);
    const path = /\bPath\s*=\s*"?([^";\s]+)"?/i.exec(chunk);
    if (id && path) ids.set(path[1], Number(id[1]));
  }
  return ids;
}

/** Every Export_Id used anywhere in TEXT. */
export function usedExportIds(text: string): Set<number> {
  return new Set([...text.matchAll(/\bExport_Id\s*=\s*(\d+)/gi)].map((m) => Number(m[1])));
}

/**
 * The body of one BE's block: an EXPORT per file system. A path that had an id keeps it (clients'
 * file handles carry it); a new path gets the lowest id >= FIRST_EXPORT_ID not in USED.
 */
export function ganeshaBlock(exports: GaneshaExport[], spec: ShareSpec, passwd: string, previous: Map<string, number>, used: Set<number>): string {
  const taken = new Set(used);
  const ids = exports.map((e) => previous.get(e.path));
  for (const id of ids) if (id !== undefined) taken.add(id);
  let next = FIRST_EXPORT_ID;
  const { squash, anonUid, anonGid } = squashFor(spec, passwd);
  const clients = [...spec.networks.map((n) => `${n.address}/${n.prefix}`), ...spec.hosts];
  const access = spec.ro ? 'RO' : 'RW';
  const rows = exports.map((e, i) => {
    let id = ids[i];
    if (id === undefined) {
      while (taken.has(next)) next++;
      if (next > 65535) throw new BeError('no free ganesha Export_Id left');
      id = next;
      taken.add(id);
    }
    return {
      id,
      path: e.path,
      pseudo: e.pseudo,
      access: clients.length > 0 ? 'None' : access,
      squash,
      anonUid,
      anonGid,
      clients: clients.length > 0 ? [clients.join(', ')] : [],
      clientAccess: access,
    };
  });
  return render('ganesha', { exports: rows });
}

export function includeDirective(file: string): string {
  return `%include "${file}"`;
}

/** Whether ganesha.conf already includes FILE (by any spelling of the directive). */
export function includesFile(conf: string, file: string): boolean {
  return conf.split('\n').some((l) => {
    const m = /^\s*%include\s+"?([^"\s]+)"?\s*$/.exec(l);
    return !!m && m[1] === file;
  });
}
