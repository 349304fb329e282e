import { describe, expect, it } from 'vitest';
import { checkDatasetName, checkPoolName, checkSnapshotName } from '../../src/zfs/names.js';

describe('ZFS name validation', () => {
  it('accepts the names of the talk', () => {
    expect(checkDatasetName('bd/be/test')).toBe('bd/be/test');
    expect(checkDatasetName('zroot/ROOT/13.2-RELEASE_p1:x')).toBe('zroot/ROOT/13.2-RELEASE_p1:x');
    expect(checkSnapshotName('zroot/ROOT/default@2026-11-21-10:00:00')).toBe('zroot/ROOT/default@2026-11-21-10:00:00');
  });

  it.each([
    ['zroot/ROOT/a;rm -rf /', 'character ";" is not allowed'],
    ['zroot/ROOT/$(id)', 'character "$" is not allowed'],
    ['zroot/ROOT/a b', 'character " " is not allowed'],
    ['zroot/../etc', "'..' is not allowed"],
    ['zroot//x', 'empty component'],
    ['zroot/x/', 'empty component'],
    ['zroot/a@b', "'@' is not allowed here"],
    ['9pool/x', 'pool name must begin with a letter'],
    ['mirror/x', "'mirror' is a reserved pool name"],
  ])('rejects %s with one line naming it', (name, why) => {
    expect(() => checkDatasetName(name)).toThrowError(new RegExp(`^invalid dataset name '${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}': ${why.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`));
  });

  it('rejects a snapshot without @ and bad snapshot parts', () => {
    expect(() => checkSnapshotName('zroot/a')).toThrow("missing '@'");
    expect(() => checkSnapshotName('zroot/a@')).toThrow('empty component');
    expect(() => checkSnapshotName('zroot/a@x|y')).toThrow('character "|"');
  });

  it('rejects an overlong name', () => {
    expect(() => checkDatasetName(`zroot/${'a'.repeat(300)}`)).toThrow('longer than 255');
    expect(() => checkPoolName('log')).toThrow('reserved');
  });
});
