/**
 * Running as an unprivileged user once the privileged work (binding ports below 1024) is done:
 * look the account up in the passwd database, hand it the files it must keep writing, then give
 * up root for good. The order is the one a setuid(2)-dropping daemon needs: supplementary groups
 * first (setgroups needs root), then the group, then the user (after setuid nothing else may change).
 */
import { chown } from 'node:fs/promises';
import type { Runner } from './run.js';
import { BeError } from './errors.js';

export interface Account {
  name: string;
  uid: number;
  gid: number;
}

/** Look a user up with getent(1) (passwd database: files, NIS, LDAP alike). */
export async function lookupUser(runner: Runner, user: string): Promise<Account> {
  const r = await runner.query(['getent', 'passwd', user], { allowFailure: true });
  const fields = r.stdout.split('\n')[0]?.split(':') ?? [];
  if (r.status !== 0 || fields.length < 4) throw new BeError(`--user ${user}: no such user`);
  return { name: fields[0], uid: Number(fields[2]), gid: Number(fields[3]) };
}

/** True when this process runs as root (and so can, and should, drop to another user). */
export function runningAsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** chown PATHS to the account, then setgroups([]), setgid, setuid. No-op (false) unless running as root. */
export async function dropPrivileges(account: Account, paths: string[]): Promise<boolean> {
  if (!runningAsRoot() || account.uid === 0) return false;
  for (const p of paths) await chown(p, account.uid, account.gid);
  process.setgroups!([]);
  process.setgid!(account.gid);
  process.setuid!(account.uid);
  if (process.getuid!() !== account.uid || process.geteuid!() !== account.uid) throw new BeError(`--user ${account.name}: could not drop privileges`);
  return true;
}
