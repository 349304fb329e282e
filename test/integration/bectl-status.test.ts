import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { be, beOk } from '../helpers/cli.js';
import { makeTestPool, type TestPool } from '../helpers/zfs.js';

// The exit statuses of the bectl verbs, as sbin/bectl/bectl.c gives them: usage(false) returns
// EX_USAGE (64); each verb returns what libbe returned, a be_error_t of lib/libbe/be.h
// (INVALIDNAME 1, EXISTS 2, NOENT 3, MOUNTED 12, ZFSOPEN 14, UNKNOWN 19); libbe_init failing
// (no pool for the BE root) makes main return -1 (255). The pool is laid out as bsdinstall
// leaves it, made with zfs. Every refusal changes nothing.

let tp: TestPool;
const R = () => ['-R', tp.root];

async function everything(): Promise<string> {
  return (await execa('zfs', ['list', '-H', '-o', 'name,canmount,mountpoint,mounted', '-t', 'filesystem,snapshot', '-r', tp.pool])).stdout;
}

beforeAll(async () => {
  tp = await makeTestPool('512M', 'bcts');
  await execa('zfs', ['create', '-o', 'mountpoint=none', tp.root]);
  await execa('zfs', ['create', '-o', 'mountpoint=/', '-o', 'canmount=noauto', `${tp.root}/default`]);
  await execa('zpool', ['set', `bootfs=${tp.root}/default`, tp.pool]);
  await beOk([...R(), 'create', '-e', 'default', 'other']);
});
afterAll(async () => tp?.destroy());

/** Each case: argv, the status bectl's source gives, the one-line message be prints. */
type Case = [string[], number, string | RegExp];

async function replay(cases: Case[]): Promise<void> {
  const before = await everything();
  for (const [args, status, message] of cases) {
    const r = await be(args);
    expect([args.join(' '), r.exitCode], r.stderr).toEqual([args.join(' '), status]);
    if (typeof message === 'string') expect(r.stderr).toBe(`be: ${message}\n`);
    else expect(r.stderr).toMatch(message);
  }
  expect(await everything()).toBe(before);
}

describe('bectl exit statuses', () => {
  it('create: EXISTS, NOENT, INVALIDNAME, UNKNOWN for a snapshot zfs has, 255 without the pool, EX_USAGE', async () => {
    await beOk([...R(), 'create', 'default@kept']);
    await replay([
      [[...R(), 'create', 'other'], 2, "boot environment 'other' already exists"],
      [[...R(), 'create', '-e', 'ghost', 'new'], 3, "boot environment 'ghost' does not exist"],
      [[...R(), 'create', '-e', 'default@nosuch', 'new'], 3, `snapshot '${tp.root}/default@nosuch' does not exist`],
      [[...R(), 'create', 'ghost@snap'], 3, "boot environment 'ghost' does not exist"],
      [[...R(), 'create', 'a b'], 1, /^be: invalid BE name 'a b': character " " is not allowed\n$/],
      [[...R(), 'create', 'default@kept'], 19, `snapshot '${tp.root}/default@kept' already exists`],
      [['-R', 'bctsnopool/ROOT', 'create', 'x'], 255, "pool 'bctsnopool' does not exist"],
      [[...R(), 'create'], 64, "missing required argument 'be'"],
      [[...R(), 'create', 'a', 'b'], 64, /^be: too many arguments for 'create'/],
      [[...R(), 'create', '-x', 'a'], 64, "unknown option '-x'"],
      [[...R(), 'create', '-e', 'default', '-l', 'flat', 'a'], 64, 'create: -e clones a BE and cannot be combined with -l/--layout-file'],
    ]);
  });

  it('a clone zfs refuses is BE_ERR_ZFSCLONE, and undone', async () => {
    await replay([[[...R(), 'create', '-e', 'default', '-o', 'recordsize=3', 'bad'], 15, /^be: zfs exited \d+: .*recordsize.*\n$/]]);
  });

  it('rename, mount, umount: NOENT, EXISTS, INVALIDNAME, MOUNTED, ZFSOPEN; umount of what is not mounted is no error', async () => {
    const dir = (await beOk([...R(), 'mount', 'other'])).trim();
    try {
      await replay([
        [[...R(), 'rename', 'ghost', 'new'], 3, "boot environment 'ghost' does not exist"],
        [[...R(), 'rename', 'default', 'other'], 2, "boot environment 'other' already exists"],
        // be_rename checks the new name before the old BE
        [[...R(), 'rename', 'ghost', 'a b'], 1, /^be: invalid BE name 'a b'/],
        [[...R(), 'rename', 'other', 'new'], 12, `boot environment 'other' is mounted at ${dir}: unmount it first`],
        [[...R(), 'rename', 'other'], 64, "missing required argument 'new'"],
        [[...R(), 'mount', 'ghost'], 3, "boot environment 'ghost' does not exist"],
        [[...R(), 'mount', 'other'], 12, `boot environment '${tp.root}/other' is already mounted at ${dir}`],
        [[...R(), 'mount', 'a', 'b', 'c'], 64, /^be: too many arguments for 'mount'/],
        [[...R(), 'umount', 'ghost'], 14, "boot environment 'ghost' does not exist"],
        [[...R(), 'unmount'], 64, "missing required argument 'be'"],
      ]);
    } finally {
      await beOk([...R(), 'umount', 'other']);
    }
    const again = await be([...R(), 'umount', 'other']);
    expect([again.exitCode, again.stderr]).toEqual([0, '']);
  });

  it('activate, destroy, list, export, import, jail, ujail, check: NOENT, 255, EX_USAGE', async () => {
    await replay([
      [[...R(), 'activate', 'ghost'], 3, "boot environment 'ghost' does not exist"],
      [[...R(), 'activate'], 64, "missing required argument 'be'"],
      [[...R(), 'activate', '-t', '-T', 'other'], 64, 'activate: -t and -T exclude each other'],
      [[...R(), 'destroy', 'ghost'], 3, "boot environment 'ghost' does not exist"],
      [[...R(), 'destroy', '-x', 'other'], 64, "unknown option '-x'"],
      [[...R(), 'list', 'extra'], 64, /^be: too many arguments for 'list'/],
      [[...R(), 'list', '-c', 'color'], 64, /^be: list: cannot sort by 'color'/],
      [['-R', 'bctsnopool/ROOT', 'list'], 255, "pool 'bctsnopool' does not exist"],
      // bectl's export drops be_export's result and exits 0; be says what libbe returned
      [[...R(), 'export', 'ghost'], 3, "boot environment 'ghost' does not exist"],
      [[...R(), 'export'], 64, "missing required argument 'be'"],
      [[...R(), 'import', 'a', 'b'], 64, /^be: too many arguments for 'import'/],
      // bectl jail: a BE be_mount cannot mount is "could not mount bootenv", status 1
      [[...R(), 'jail', 'ghost'], 1, "boot environment 'ghost' does not exist"],
      [[...R(), 'jail'], 64, "missing required argument 'be'"],
      [[...R(), 'ujail'], 64, "missing required argument 'target'"],
      [[...R(), 'check', 'extra'], 64, /^be: too many arguments for 'check'/],
    ]);
  });

  it("be's own commands keep 1 for errors and 2 for usage errors", async () => {
    await replay([
      [[...R(), 'snapshot', '-x', 'other'], 2, "unknown option '-x'"],
      [[...R(), 'snapshot', 'ghost'], 1, "boot environment 'ghost' does not exist"],
      [[...R(), 'snapshot', 'default@kept'], 1, `snapshot '${tp.root}/default@kept' already exists`],
      [['-R', 'bctsnopool/ROOT', 'snapshot', 'x'], 1, "pool 'bctsnopool' does not exist"],
    ]);
  });
});
