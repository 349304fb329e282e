// src/sys/configfile.ts: one loader for `be pxe serve --config` and `be installerconfig --config`,
// with one rule for JSON versus YAML (the extension, then whether the text opens with '{').
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configFormat, parseConfigText, readConfigFile } from '../../src/sys/configfile.js';
import { readPxeConfig } from '../../src/pxe/settings.js';
import { be } from '../helpers/cli.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bmec-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe('config files', () => {
  it('tells JSON from YAML by the extension first, then by a leading {', () => {
    expect(configFormat('a.json', 'address: 1')).toBe('JSON');
    expect(configFormat('a.JSON', '')).toBe('JSON');
    expect(configFormat('a.yaml', '{"a": 1}')).toBe('YAML');
    expect(configFormat('a.yml', '')).toBe('YAML');
    expect(configFormat('/etc/be/pxe.conf', '  \n{"a": 1}')).toBe('JSON');
    expect(configFormat('/etc/be/pxe.conf', 'a: 1')).toBe('YAML');
    expect(configFormat('pxe', '')).toBe('YAML');
  });

  it('reads the same settings from JSON and YAML, under any name', async () => {
    const want = { address: '10.0.0.1', dns: ['10.0.0.2', '10.0.0.3'], proxy: true };
    const json = JSON.stringify(want);
    const yaml = 'address: 10.0.0.1\ndns:\n  - 10.0.0.2\n  - 10.0.0.3\nproxy: true\n';
    for (const [name, text] of [['a.json', json], ['a.yaml', yaml], ['a.yml', yaml], ['json.conf', json], ['yaml.conf', yaml], ['flow.yaml', json]]) {
      expect(await readConfigFile(await file(name, text)), name).toEqual(want);
    }
    expect(await readConfigFile(await file('empty.yaml', ''))).toEqual({});
  });

  it('refuses what is not a mapping, or not valid, with one line naming the file', async () => {
    expect(() => parseConfigText('[1, 2]', 'x.json')).toThrow('--config x.json: expected an object of settings');
    expect(() => parseConfigText('- a\n- b\n', 'x.yaml')).toThrow('--config x.yaml: expected an object of settings');
    expect(() => parseConfigText('plain words', 'x.conf')).toThrow('--config x.conf: expected an object of settings');
    expect(() => parseConfigText('{"a": 1', 'x.conf')).toThrow(/^--config x\.conf: not valid JSON: /);
    expect(() => parseConfigText('a: [1\n', 'x.yml')).toThrow(/^--config x\.yml: not valid YAML: [^\n]+$/);
    await expect(readConfigFile(join(dir, 'missing.json'))).rejects.toThrow(`--config ${join(dir, 'missing.json')}: ENOENT`);
  });

  it('be pxe serve and be installerconfig read the same file the same way', async () => {
    const pxe = await file('pxe.conf', 'address: 10.0.0.1\ntftp-root: /srv/tftp\n');
    expect(await readPxeConfig(pxe)).toEqual({ address: '10.0.0.1', 'tftp-root': '/srv/tftp' });
    const install = await file('install.conf', 'disks: [ada0]\nhostname: conf-yaml\n');
    const r = await be(['installerconfig', '--config', install]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('conf-yaml');
    const broken = await file('broken.conf', '{"disks": [');
    for (const args of [['installerconfig', '--config', broken], ['-n', 'pxe', 'serve', '--config', broken]]) {
      const bad = await be(args);
      expect(bad.exitCode, args.join(' ')).toBe(1);
      expect(bad.stderr).toMatch(new RegExp(`^be: --config ${broken.replace(/[.]/g, '\\.')}: not valid JSON: .+\\n$`));
      expect(bad.stdout).toBe('');
    }
  });
});
