// src/sys/privileges.ts: the passwd lookup and the drop from root, run for real (the drop in a
// child process, since it cannot be undone).
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Runner } from '../../src/sys/run.js';
import { dropPrivileges, lookupUser, runningAsRoot } from '../../src/sys/privileges.js';

const runner = new Runner({});

describe('privileges', () => {
  it('looks accounts up in the passwd database', async () => {
    expect(await lookupUser(runner, 'root')).toEqual({ name: 'root', uid: 0, gid: 0 });
    const line = (await execa('getent', ['passwd', 'nobody'])).stdout.split(':');
    expect(await lookupUser(runner, 'nobody')).toEqual({ name: 'nobody', uid: Number(line[2]), gid: Number(line[3]) });
    await expect(lookupUser(runner, 'bmec-no-such-user')).rejects.toThrow('--user bmec-no-such-user: no such user');
  });

  it('staying root (user root) changes nothing', async () => {
    expect(await dropPrivileges({ name: 'root', uid: 0, gid: 0 }, ['/nonexistent'])).toBe(false);
  });

  it.runIf(runningAsRoot())('as root: hands the files to the user, then runs as it with no other groups', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'bmec-priv-'));
    try {
      const owned = join(dir, 'leases');
      await writeFile(owned, '');
      const script = join(dir, 'drop.ts');
      const src = new URL('../../src/sys/privileges.ts', import.meta.url).pathname;
      await writeFile(script, [
        `import { dropPrivileges, lookupUser } from ${JSON.stringify(src)};`,
        `import { Runner } from ${JSON.stringify(new URL('../../src/sys/run.ts', import.meta.url).pathname)};`,
        `const account = await lookupUser(new Runner({}), 'nobody');`,
        `const dropped = await dropPrivileges(account, [${JSON.stringify(owned)}]);`,
        `console.log(JSON.stringify({ dropped, uid: process.getuid(), euid: process.geteuid(), gid: process.getgid(), groups: process.getgroups() }));`,
      ].join('\n'));
      const viteNode = new URL('../../node_modules/.bin/vite-node', import.meta.url).pathname;
      const out = JSON.parse((await execa(viteNode, [script], { cwd: dir })).stdout.trim().split('\n').pop()!);
      const nobody = await lookupUser(runner, 'nobody');
      expect(out).toEqual({ dropped: true, uid: nobody.uid, euid: nobody.uid, gid: nobody.gid, groups: [nobody.gid] });
      const st = await stat(owned);
      expect([st.uid, st.gid]).toEqual([nobody.uid, nobody.gid]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
