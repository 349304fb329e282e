import { describe, expect, it } from 'vitest';
import { mountOrder } from '../../src/be/access.js';
import { parseGet } from '../../src/zfs/zfs.js';

// `zfs get -H -p -o name,property,value,source mountpoint,canmount -r` of a nested BE.
const raw = [
  ['zroot/ROOT/head', '/', 'noauto'],
  ['zroot/ROOT/head/var', '/var', 'off'],
  ['zroot/ROOT/head/var/tmp', '/var/tmp', 'noauto'],
  ['zroot/ROOT/head/var/log', '/var/log', 'noauto'],
  ['zroot/ROOT/head/usr', '/usr', 'off'],
  ['zroot/ROOT/head/usr/home', '/usr/home', 'noauto'],
  ['zroot/ROOT/head/tmp', '/tmp', 'noauto'],
  ['zroot/ROOT/head/legacy', 'legacy', 'noauto'],
  ['zroot/ROOT/head@snap', '-', '-'],
]
  .flatMap(([n, mp, cm]) => [`${n}\tmountpoint\t${mp}\tlocal`, `${n}\tcanmount\t${cm}\tlocal`])
  .join('\n');

describe('zfsbe mount order', () => {
  it('mounts the BE first, then children sorted by mountpoint, skipping canmount=off and legacy', () => {
    const steps = mountOrder('zroot/ROOT/head', parseGet(raw, false));
    expect(steps).toEqual([
      { dataset: 'zroot/ROOT/head', relative: '/' },
      { dataset: 'zroot/ROOT/head/tmp', relative: '/tmp' },
      { dataset: 'zroot/ROOT/head/usr/home', relative: '/usr/home' },
      { dataset: 'zroot/ROOT/head/var/log', relative: '/var/log' },
      { dataset: 'zroot/ROOT/head/var/tmp', relative: '/var/tmp' },
    ]);
  });

  it('relates children to a BE root that is not at /', () => {
    const table = parseGet('p/be/x\tmountpoint\t/alt/x\tlocal\np/be/x/var/log\tmountpoint\t/alt/x/var/log\tinherited from p/be/x\n', false);
    expect(mountOrder('p/be/x', table)).toEqual([
      { dataset: 'p/be/x', relative: '/' },
      { dataset: 'p/be/x/var/log', relative: '/var/log' },
    ]);
  });
});
