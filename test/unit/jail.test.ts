import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { execa } from 'execa';
import {
  jailParams,
  jailCreateArgv,
  jailRemoveArgv,
  jailName,
  jailConf,
  jailCleanupMounts,
  jexecArgv,
  parseJls,
  jlsArgv,
} from '../../src/boot/jail.js';
import { parseMountTable } from '../../src/sys/platform.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';
import { be, beOk } from '../helpers/cli.js';

/**
 * A jail.conf(5) reader following usr.sbin/jail/jaillex.l and jailparse.y, enough for one block:
 * comments (#, //, C-style), `name { param; param = value[, value]...; }`, values as atoms,
 * '...' strings (backslash escapes, no variables) or "..." strings where an unescaped $ starts a
 * variable (kept here as `${VAR}` so a test sees that jail(8) would expand it).
 */
function parseJailConf(text: string): Map<string, Map<string, string[] | true>> {
  const tokens: Array<{ t: 'str' | 'sym'; v: string }> = [];
  let i = 0;
  const atom = /[A-Za-z0-9_!%&()\-.:<>?@[\]^`|~$*+/]/;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) i++;
    else if (c === '#' || text.startsWith('//', i)) i = text.indexOf('\n', i) < 0 ? text.length : text.indexOf('\n', i);
    else if (text.startsWith('/*', i)) i = text.indexOf('*/', i) + 2;
    else if (text.startsWith('+=', i)) (tokens.push({ t: 'sym', v: '+=' }), (i += 2));
    else if (';={},'.includes(c)) (tokens.push({ t: 'sym', v: c }), i++);
    else if (c === "'" || c === '"') {
      let v = '';
      i++;
      while (text[i] !== c) {
        if (i >= text.length) throw new Error('unterminated string');
        if (text[i] === '\\') v += text[++i];
        else if (c === '"' && text[i] === '$') v += '${VAR}';
        else v += text[i];
        i++;
      }
      i++;
      tokens.push({ t: 'str', v });
    } else if (atom.test(c)) {
      let v = '';
      while (i < text.length && atom.test(text[i])) v += text[i++];
      tokens.push({ t: 'str', v });
    } else throw new Error(`unexpected '${c}'`);
  }
  const jails = new Map<string, Map<string, string[] | true>>();
  let k = 0;
  const next = () => tokens[k++];
  while (k < tokens.length) {
    const name = next();
    if (name.t !== 'str' || next().v !== '{') throw new Error('expected NAME {');
    const params = new Map<string, string[] | true>();
    for (let tok = next(); tok.v !== '}'; tok = next()) {
      if (tok.t !== 'str') throw new Error(`expected a parameter, got '${tok.v}'`);
      const op = next();
      if (op.v === ';') {
        params.set(tok.v, true);
        continue;
      }
      if (op.v !== '=' && op.v !== '+=') throw new Error(`expected = after ${tok.v}`);
      const values: string[] = [];
      for (let v = next(); ; v = next()) {
        values.push(v.v);
        const sep = next();
        if (sep.v === ';') break;
        if (sep.v !== ',') throw new Error(`expected ; after ${tok.v}`);
      }
      params.set(tok.v, values);
    }
    jails.set(name.v, params);
  }
  return jails;
}

/** sys/kern/kern_jail.c: a new jail must persist or have a process attached (exec.start/command). */
function kernelAccepts(params: Map<string, string[] | true>): boolean {
  return params.has('persist') || params.has('exec.start') || params.has('command');
}

describe('jail(8) argv (usr.sbin/jail/jail.c, command.c)', () => {
  it('jail -c: bectl defaults, path = the mounted BE, -o in turn, the utility last as command=', () => {
    const params = jailParams('zroot/ROOT/head', '/tmp/be_mount.x', { params: ['allow.raw_sockets=1', 'enforce_statfs=2'] });
    expect(jailCreateArgv(params, ['/bin/sh', '-c', 'uname -a'])).toEqual([
      'jail', '-c', 'name=zroot_ROOT_head', 'path=/tmp/be_mount.x', 'host.hostname=head', 'mount.devfs', 'persist',
      'allow.mount=true', 'allow.mount.devfs=true', 'enforce_statfs=2', 'allow.raw_sockets=1',
      'command=/bin/sh', '-c', 'uname -a',
    ]);
    // no utility (-b, a hunt jail): no command= word, and persist keeps the jail (kern_jail.c)
    expect(jailCreateArgv(params).some((a) => a.startsWith('command'))).toBe(false);
  });

  it('-u unsets in command-line order; host.hostname and path go back to the default (bectl_jail.c)', () => {
    const p = jailParams('zroot/ROOT/head', '/m', { params: [{ unset: 'persist' }, 'host.hostname=x', { unset: 'host.hostname' }, { unset: 'mount.devfs' }, { unset: 'no.such' }] });
    expect(p.map(([k]) => k)).not.toContain('persist');
    expect(p.map(([k]) => k)).not.toContain('mount.devfs');
    expect(p).toContainEqual(['host.hostname', 'head']);
    expect(() => jailParams('p/be', '/m', { params: [{ unset: 'name' }] })).toThrow("jail parameter 'name' is set by be (p_be)");
  });

  it('ip4.addr or vnet, never both; refuses the parameters bectl refuses', () => {
    expect(jailParams('p/be', '/m', { ip4: 'em0|192.168.2.20/24' })).toContainEqual(['ip4.addr', 'em0|192.168.2.20/24']);
    const vnet = jailParams('p/be', '/m', { vnetInterface: 'epair0b' });
    expect(vnet).toContainEqual(['vnet', true]);
    expect(vnet).toContainEqual(['vnet.interface', 'epair0b']);
    expect(() => jailParams('p/be', '/m', { ip4: '10.0.0.2', vnetInterface: 'epair0b' })).toThrow(/either --ip4 or --vnet/);
    for (const bad of ['exec.start=/bin/sh /etc/rc', 'command=/bin/sh', 'persist=1', 'nopersist=1']) expect(() => jailParams('p/be', '/m', { params: [bad] })).toThrow(/is not allowed/);
    expect(() => jailParams('p/be', '/m', { params: ['persist'] })).toThrow(/expected PARAM=VALUE/);
  });

  it('jail -r takes the jail alone: no param=value words (jail.c refuses them after -r)', () => {
    expect(jailRemoveArgv(jailName('bd/be/test'))).toEqual(['jail', '-r', 'bd_be_test']);
  });

  it('what is unmounted after jail -r: devfs from mount.devfs, in command.c stop order with procfs and fdescfs', () => {
    const path = '/tmp/be_mount.1';
    expect(jailCleanupMounts(path, jailParams('p/be', path, {}))).toEqual([`${path}/dev`]);
    expect(jailCleanupMounts(path, jailParams('p/be', path, { params: ['mount.fdescfs=true', 'mount.procfs=1'] }))).toEqual([`${path}/proc`, `${path}/dev/fd`, `${path}/dev`]);
    expect(jailCleanupMounts(path, jailParams('p/be', path, { params: [{ unset: 'mount.devfs' }] }))).toEqual([]);
    expect(jailCleanupMounts(path, jailParams('p/be', path, { params: ['mount.devfs=false'] }))).toEqual([]);
    expect(jailCleanupMounts(path, jailParams('p/be', path, { params: ['mount=tmpfs /tmp/be_mount.1/tmp tmpfs rw'] }))).toEqual([`${path}/dev`, `${path}/tmp`]);
  });

  it('on a real run, every non-ZFS mount under the jail path from `mount -p`, deepest first (bectl_jail_cleanup)', () => {
    const table = parseMountTable(
      [
        'zroot/ROOT/default\t/\tzfs\trw\t0 0',
        'devfs\t/dev\tdevfs\trw\t0 0',
        'zroot/ROOT/head\t/tmp/be_mount.1\tzfs\trw\t0 0',
        'zroot/ROOT/head/var\t/tmp/be_mount.1/var\tzfs\trw\t0 0',
        'devfs\t/tmp/be_mount.1/dev\tdevfs\trw\t0 0',
        'fdescfs\t/tmp/be_mount.1/dev/fd\tfdescfs\trw\t0 0',
        'tmpfs\t/tmp/be_mount.1/var/run\ttmpfs\trw\t0 0',
        'devfs\t/tmp/be_mount.10/dev\tdevfs\trw\t0 0',
      ].join('\n'),
    );
    expect(jailCleanupMounts('/tmp/be_mount.1', undefined, table)).toEqual(['/tmp/be_mount.1/var/run', '/tmp/be_mount.1/dev/fd', '/tmp/be_mount.1/dev']);
    // a failed command= makes jail(8) undo its own start steps (devfs gone): nothing is unmounted twice
    expect(jailCleanupMounts('/tmp/be_mount.1', jailParams('p/be', '/tmp/be_mount.1', {}), table.filter((e) => e.fstype !== 'devfs' && e.fstype !== 'fdescfs'))).toEqual(['/tmp/be_mount.1/var/run']);
  });

  it('jexec JAIL UTILITY ARG... (usr.sbin/jexec/jexec.c: the jail, then what it execs)', () => {
    expect(jexecArgv('zroot_ROOT_head', ['/var/tmp/t.sh', '-v'])).toEqual(['jexec', 'zroot_ROOT_head', '/var/tmp/t.sh', '-v']);
    expect(() => jexecArgv('x', [])).toThrow('jexec: no command');
  });

  it('jls jid name path, read as jls.c prints it (one space between, quoted_print for spaces and quotes)', () => {
    expect(jlsArgv()).toEqual(['jls', 'jid', 'name', 'path']);
    expect(parseJls('3 zroot_ROOT_head /tmp/be_mount.1\n12 web "/usr/jails/my web"\n14 q \'/a "b"\'\n')).toEqual([
      { jid: '3', name: 'zroot_ROOT_head', path: '/tmp/be_mount.1' },
      { jid: '12', name: 'web', path: '/usr/jails/my web' },
      { jid: '14', name: 'q', path: '/a "b"' },
    ]);
  });
});

describe('be jail --conf: a jail.conf(5) block jail(8) reads (jaillex.l, jailparse.y) and the kernel accepts', () => {
  it('has persist (kern_jail.c: "new jail must persist or attach") and the parameters as written', () => {
    const jails = parseJailConf(jailConf(jailParams('zroot/ROOT/head', '/ROOT/head', {})));
    const head = jails.get('zroot_ROOT_head')!;
    expect(kernelAccepts(head)).toBe(true);
    expect(head.get('persist')).toBe(true);
    expect(head.get('mount.devfs')).toBe(true);
    expect(head.get('path')).toEqual(['/ROOT/head']);
    expect(head.get('enforce_statfs')).toEqual(['1']);
  });

  it('values are taken literally: no $variable expansion, quotes and backslashes kept', () => {
    const path = "/jails/it's $HOME \\ here";
    const jails = parseJailConf(jailConf(jailParams('zroot/ROOT/head', path, { params: ['exec.prestart=echo "$x"'] })));
    const head = jails.get('zroot_ROOT_head')!;
    expect(head.get('path')).toEqual([path]);
    expect(head.get('exec.prestart')).toEqual(['echo "$x"']);
  });
});

describe('be -n jail / ujail: the FreeBSD plan (jail, jexec, jls never run here)', () => {
  let pool: TestPool;
  let be1: string;

  beforeAll(async () => {
    pool = await makeTestPool('256M');
    be1 = `${pool.root}/head`;
    await beOk(['create', '-l', 'flat', be1]);
    await beOk(['create', '-l', 'flat', `${pool.root}/42`]);
  }, 60_000);

  afterAll(async () => {
    await pool?.destroy();
  }, 60_000);

  const lines = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#') && l !== 'set -e');
  const FREEBSD_CHECK = `[ "$(uname -s)" = FreeBSD ] || { echo 'be: jail(8) needs FreeBSD' >&2; exit 1; }`;

  it('jail -c with the utility, then jail -r, then umount <BE>/dev, then the BE unmount, in that order', async () => {
    const r = await be(['-n', 'jail', be1, '--', '/bin/echo', 'hi']);
    expect(r.exitCode, r.stderr).toBe(0);
    const l = lines(r.stdout);
    const create = l.findIndex((x) => x.startsWith('jail -c '));
    const dir = /path=(\S+)/.exec(l[create])![1];
    expect(l[create]).toContain(' mount.devfs ');
    expect(l[create].endsWith(' command=/bin/echo hi')).toBe(true);
    expect(l[create + 1]).toBe(`jail -r ${jailName(be1)}`);
    expect(l[create + 2]).toBe(`umount ${dir}/dev`);
    // then the BE itself (zfs-fuse here: zfs umount), after its devfs
    expect(l.slice(create + 3).some((x) => x === `zfs umount ${be1}`)).toBe(true);
  });

  it('-u mount.devfs: nothing to unmount but the BE; -o mount.procfs=1: /proc before /dev', async () => {
    const none = lines(await beOk(['-n', 'jail', '-u', 'mount.devfs', be1]));
    expect(none.some((x) => /^umount .*\/dev$/.test(x))).toBe(false);
    const proc = lines(await beOk(['-n', 'jail', '-o', 'mount.procfs=1', be1]));
    const i = proc.findIndex((x) => x.startsWith('jail -r '));
    expect(proc[i + 1]).toMatch(/^umount \S+\/proc$/);
    expect(proc[i + 2]).toMatch(/^umount \S+\/dev$/);
  });

  it('-b: a standing jail with persist and no command, nothing removed; -U: the utility, nothing removed', async () => {
    const batch = lines(await beOk(['-n', 'jail', '-b', be1, '--', '/bin/echo', 'ignored']));
    const create = batch.find((x) => x.startsWith('jail -c '))!;
    expect(create.split(' ')).toContain('persist');
    expect(create).not.toContain('command=');
    expect(batch.some((x) => x.startsWith('jail -r') || x.startsWith('umount') || x.startsWith('zfs umount'))).toBe(false);
    const keep = lines(await beOk(['-n', 'jail', '-U', be1, '--', '/bin/echo', 'hi']));
    expect(keep.find((x) => x.startsWith('jail -c '))).toContain('command=/bin/echo hi');
    expect(keep.some((x) => x.startsWith('jail -r') || x.startsWith('umount') || x.startsWith('zfs umount'))).toBe(false);
  });

  it('-o path=DIR mounts the BE there (bectl: be_mount at the path given); a later -u path puts the default back', async () => {
    const dir = `${pool.altroot}/jailroot`;
    const at = lines(await beOk(['-n', 'jail', '-o', `path=${dir}`, be1]));
    expect(at.find((x) => x.startsWith('jail -c '))).toContain(` path=${dir} `);
    expect(at).toContain(`umount ${dir}/dev`);
    const back = lines(await beOk(['-n', 'jail', '-o', `path=${dir}`, '-u', 'path', be1]));
    expect(back.find((x) => x.startsWith('jail -c '))).toMatch(/ path=\S+\/be_mount\.[0-9a-f]{8} /);
    const rel = await be(['-n', 'jail', '-o', 'path=jails/x', be1]);
    expect([rel.exitCode, rel.stderr]).toEqual([1, "be: invalid jail path 'jails/x': not an absolute pathname\n"]);
  });

  it('refuses bad parameters with one line, before mounting anything', async () => {
    const r = await be(['-n', 'jail', '-o', 'exec.start=/bin/sh', be1]);
    expect([r.exitCode, r.stderr, r.stdout]).toEqual([1, "be: jail parameter 'exec.start' is not allowed: be runs the command itself\n", '']);
    const b = await be(['-n', 'jail', '-b', '-u', 'persist', be1]);
    expect([b.exitCode, b.stderr, b.stdout]).toEqual([1, 'be: jail -b needs persist (a jail with no command must persist): drop -u persist\n', '']);
  });

  it('--conf prints a block with persist that parses as jail.conf', async () => {
    const conf = parseJailConf(await beOk(['jail', '--conf', be1]));
    expect(kernelAccepts(conf.get(jailName(be1))!)).toBe(true);
  });

  it('ujail BE of a mounted BE: jail -r, umount its devfs, then the BE; a numeric BE name is the BE, not jail id 42', async () => {
    const dir = (await beOk(['mount', be1])).trim().split('\n').pop()!.replace(/^.* /, '');
    try {
      // the plan first checks that it runs on FreeBSD (the live refusal below, made by the script)
      const [check, ...l] = lines(await beOk(['-n', 'ujail', be1]));
      expect(check).toBe(FREEBSD_CHECK);
      expect(l[0]).toBe(`jail -r ${jailName(be1)}`);
      expect(l[1]).toBe(`umount ${dir}/dev`);
      expect(l).toContain(`zfs umount ${be1}`);
    } finally {
      await beOk(['umount', be1]);
    }
    expect(lines(await beOk(['-R', pool.root, '-n', 'unjail', '42']))).toEqual([FREEBSD_CHECK, `jail -r ${jailName(`${pool.root}/42`)}`]);
    // not a BE: a jail id or name, passed to jail -r as given
    expect(lines(await beOk(['-R', pool.root, '-n', 'ujail', '7']))).toEqual([FREEBSD_CHECK, 'jail -r 7']);
  });

  it('jail and ujail change nothing on Linux without -n; the plan, run here, refuses the same way before its first step', async () => {
    const r = await be(['jail', be1]);
    expect([r.exitCode, r.stderr]).toEqual([1, 'be: jail(8) needs FreeBSD (use -n to see the plan)\n']);
    const script = await beOk(['-n', 'jail', be1]);
    const ran = await execa('sh', ['-c', script], { reject: false });
    expect([ran.exitCode, ran.stderr, ran.stdout]).toEqual([1, 'be: jail(8) needs FreeBSD', '']);
    const u = await be(['ujail', be1]);
    expect([u.exitCode, u.stderr]).toEqual([1, 'be: jail(8) needs FreeBSD (use -n to see the plan)\n']);
    await execa('zfs', ['get', '-H', '-o', 'value', 'mounted', be1]).then((m) => expect(m.stdout).toBe('no'));
  });
});
