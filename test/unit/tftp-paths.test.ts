import { describe, expect, it } from 'vitest';
import { insideRoot, requestPath } from '../../src/net/tftp/index.js';

describe('tftp request paths', () => {
  it('keeps plain relative names and strips leading slashes, dots and empty components', () => {
    expect(requestPath('pxelinux.0')).toBe('pxelinux.0');
    expect(requestPath('/boot/loader.efi')).toBe('boot/loader.efi');
    expect(requestPath('//boot//./kernel/kernel')).toBe('boot/kernel/kernel');
    expect(requestPath('a..b/c...')).toBe('a..b/c...');
  });

  it('refuses parent components anywhere', () => {
    for (const name of ['..', '../etc/passwd', 'boot/../../etc/passwd', '/..', 'a/..', 'a/../b']) {
      expect(() => requestPath(name), name).toThrow(/parent directory/);
    }
  });

  it('refuses backslashes, NUL, control characters and invalid UTF-8', () => {
    for (const name of ['..\\..\\etc\\passwd', 'boot\\pxeboot', 'a\u0000b', 'a\nb', 'a\u007fb', 'caf\ufffd']) {
      expect(() => requestPath(name), JSON.stringify(name)).toThrow(/forbidden character/);
    }
  });

  it('refuses names that name no file', () => {
    for (const name of ['/', '.', './/.', '']) expect(() => requestPath(name), name).toThrow(/names no file/);
  });

  it('checks the root on whole path components', () => {
    expect(insideRoot('/srv/tftp', '/srv/tftp')).toBe(true);
    expect(insideRoot('/srv/tftp', '/srv/tftp/a/b')).toBe(true);
    expect(insideRoot('/srv/tftp', '/srv/tftp-evil/a')).toBe(false);
    expect(insideRoot('/srv/tftp', '/srv/tft')).toBe(false);
    expect(insideRoot('/srv/tftp', '/etc/passwd')).toBe(false);
    expect(insideRoot('/', '/etc/passwd')).toBe(true);
  });
});
