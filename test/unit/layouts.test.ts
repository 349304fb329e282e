import { describe, expect, it } from 'vitest';
import { knownLayouts, loadLayout, parseLayout } from '../../src/be/layouts.js';

describe('layouts', () => {
  it('ships freebsd, flat and shallow', () => {
    expect(knownLayouts()).toEqual(['flat', 'freebsd', 'shallow']);
  });

  it('freebsd is the nested layout of the talk, parents first', () => {
    const layout = loadLayout('freebsd');
    expect(layout.datasets.map((d) => d.path)).toEqual([
      '', 'tmp', 'usr', 'var', 'usr/home', 'usr/ports', 'usr/src', 'var/audit', 'var/crash', 'var/log', 'var/mail', 'var/tmp',
    ]);
    expect(layout.datasets[0].properties).toMatchObject({ mountpoint: '/', canmount: 'noauto' });
    for (const d of layout.datasets.slice(1)) {
      expect(d.properties.canmount).toBe(d.path === 'usr' || d.path === 'var' ? 'off' : 'noauto');
      expect(d.properties.mountpoint).toBeUndefined(); // inherited: the child's path under the BE root
    }
  });

  it('flat and shallow are one dataset', () => {
    expect(loadLayout('flat').datasets).toHaveLength(1);
    expect(loadLayout('shallow').datasets).toHaveLength(1);
  });

  it('names the known layouts when asked for an unknown one', () => {
    expect(() => loadLayout('zfsboot')).toThrow("unknown layout 'zfsboot' (known: flat, freebsd, shallow)");
  });

  it.each([
    ['not json', 'invalid JSON'],
    ['{"datasets": [{"path": "tmp"}]}', 'the first dataset must be the BE root'],
    ['{"datasets": [{"path": ""}, {"path": "../x"}]}', "invalid dataset path '../x'"],
    ['{"datasets": [{"path": ""}, {"path": "a;b"}]}', "invalid dataset path 'a;b'"],
    ['{"datasets": [{"path": ""}, {"path": "usr/home"}]}', "'usr/home' comes without its parent 'usr'"],
    ['{"datasets": [{"path": ""}, {"path": "x", "properties": {"canmount": 3}}]}', 'property canmount'],
    ['{"datasets": [{"path": ""}, {"path": "x", "properties": {"bad prop": "on"}}]}', "invalid property name 'bad prop'"],
    ['{"datasets": [{"path": ""}, {"path": "x"}, {"path": "x"}]}', "'x' appears twice"],
  ])('rejects a bad layout file: %s', (text, message) => {
    expect(() => parseLayout(text, 'mine.json')).toThrow(message);
  });
});
