import { execa } from 'execa';
import { mkdtemp, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildMirror, busyboxUserland, type FileSpec } from '../helpers/mirror.js';

/** Synthetic releases for the hunt tests: which one regresses, which cannot be tested, a metric per release. */
export const RELEASES = ['13.0', '13.1', '13.2', '13.3', '13.4', '13.5', '14.0'];
export const FIRST_BAD = '13.5';
export const UNTESTABLE = '13.3';
export const manpages = (release: string) => 10 + RELEASES.indexOf(release) * 3;

export function expectedVerdict(release: string): 'good' | 'bad' | 'skip' {
  if (release === UNTESTABLE) return 'skip';
  return RELEASES.indexOf(release) >= RELEASES.indexOf(FIRST_BAD) ? 'bad' : 'good';
}

function baseSet(release: string): Record<string, FileSpec> {
  const extra: Record<string, FileSpec> = {
    'bin/cat': { symlink: 'busybox' },
    'bin/grep': { symlink: 'busybox' },
    'bin/wc': { symlink: 'busybox' },
    'bin/sleep': { symlink: 'busybox' },
    'etc/hunt/feature': RELEASES.indexOf(release) >= RELEASES.indexOf(FIRST_BAD) ? 'broken\n' : 'works\n',
  };
  if (release === UNTESTABLE) extra['etc/hunt/untestable'] = 'the test harness does not build here\n';
  for (let i = 0; i < manpages(release); i++) extra[`usr/share/man/man1/page${i}.1`] = `.Dd ${release}\n`;
  return busyboxUserland(extra);
}

/** The test the hunt runs inside each release (a FreeBSD-ish /bin/sh script). */
export function testScript(sleepSeconds = 0): string {
  return [
    '#!/bin/sh',
    '# is the manual page count improving or regressing?',
    'n=$(ls /usr/share/man/man1 | wc -l)',
    'echo "BE-METRIC manpages=$n"',
    sleepSeconds ? `sleep ${sleepSeconds}` : '',
    'if [ -e /etc/hunt/untestable ]; then echo "cannot test $BE_RELEASE"; exit 125; fi',
    'if grep -q broken /etc/hunt/feature; then echo "feature broken in $BE_RELEASE"; exit 1; fi',
    'echo "feature works in $BE_RELEASE"',
    '',
  ].join('\n');
}

export interface Fixture {
  dir: string;
  mirror: string;
  test: (sleepSeconds?: number, name?: string) => Promise<string>;
  cleanup(): Promise<void>;
}

export async function makeFixture(): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'be-hunt-'));
  const mirror = join(dir, 'mirror');
  await buildMirror(mirror, RELEASES.map((version) => ({ version, sets: { base: { files: baseSet(version) } } })));
  return {
    dir,
    mirror,
    async test(sleepSeconds = 0, name = `test${sleepSeconds}.sh`) {
      const path = join(dir, name);
      await writeFile(path, testScript(sleepSeconds));
      await chmod(path, 0o755);
      return path;
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export { execa };
