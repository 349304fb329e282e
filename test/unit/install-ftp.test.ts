import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { ftpFetchArgv, ftpMissing } from '../../src/install/fetch.js';

const URL = 'ftp://mirror.example/pub/FreeBSD/releases/amd64/14.1-RELEASE/base.txz';
const PART = '/var/cache/be/base.txz.part';

/**
 * Split an argv into options (with their value, if the option takes one) and operands, the way
 * getopt(3) does: grouped short flags (-fsS), `--` ending the options. TAKES_VALUE lists the
 * options that take an argument.
 */
function parse(argv: string[], takesValue: Set<string>): { options: Array<[string, string | undefined]>; operands: string[] } {
  const options: Array<[string, string | undefined]> = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    for (let j = 1; j < a.length; j++) {
      const flag = `-${a[j]}`;
      if (takesValue.has(flag)) {
        const rest = a.slice(j + 1);
        options.push([flag, rest !== '' ? rest : argv[++i]]);
        break;
      }
      options.push([flag, undefined]);
    }
  }
  return { options, operands: argv.slice(i) };
}

describe('ftp on FreeBSD: fetch(1) from the base system', () => {
  // fetch(1): -q quiet mode; -r restart a previously interrupted transfer (the partial output
  // file is kept on failure); -o file sets the output file, '-' meaning standard output.
  const FETCH_OPTIONS = new Map([
    ['-q', 'quiet: no progress report'],
    ['-r', 'restart an interrupted transfer'],
    ['-o', 'output file (- for standard output)'],
  ]);
  const takesValue = new Set(['-o']);

  it('downloads a set into its .part file, restarting what the file already holds', () => {
    const argv = ftpFetchArgv(URL, PART, { resume: true, platform: 'freebsd' });
    expect(argv[0]).toBe('fetch');
    const { options, operands } = parse(argv.slice(1), takesValue);
    for (const [flag] of options) expect(FETCH_OPTIONS.has(flag), `fetch(1) option ${flag}`).toBe(true);
    expect(Object.fromEntries(options)).toEqual({ '-q': undefined, '-r': undefined, '-o': PART });
    expect(operands).toEqual([URL]);
  });

  it('reads a MANIFEST or CHECKSUM file to standard output, with nothing to restart', () => {
    const argv = ftpFetchArgv(URL, '-', { platform: 'freebsd' });
    expect(argv[0]).toBe('fetch');
    const { options, operands } = parse(argv.slice(1), takesValue);
    expect(Object.fromEntries(options)).toEqual({ '-q': undefined, '-o': '-' });
    expect(operands).toEqual([URL]);
    // Asking for resume makes no sense on stdout, and is not passed.
    expect(ftpFetchArgv(URL, '-', { resume: true, platform: 'freebsd' })).toEqual(argv);
  });

  it("takes fetch(1)'s one-line complaint about a missing file as not found, other failures not", () => {
    expect(ftpMissing('fetch', 1, `fetch: ${URL}: File unavailable (e.g., file not found, no access)\n`)).toBe(true);
    expect(ftpMissing('fetch', 1, `fetch: ${URL}: Connection refused\n`)).toBe(false);
    expect(ftpMissing('fetch', 1, `fetch: ${URL}: Login incorrect\n`)).toBe(false);
  });
});

describe('ftp elsewhere: curl(1), its options checked against the curl installed here', () => {
  const takesValue = new Set(['-C', '-o']);
  let help: string | undefined;
  async function curlHelp(): Promise<string> {
    help ??= (await execa('curl', ['--help', 'all'])).stdout;
    return help;
  }
  /** What `curl --help all` says an option does (the text after its names). */
  async function meaning(flag: string): Promise<string> {
    const line = (await curlHelp()).split('\n').find((l) => new RegExp(`^\\s*${flag},\\s`).test(l));
    expect(line, `curl has no option ${flag}`).toBeDefined();
    return line!;
  }

  it('downloads a set into its .part file, continuing where it stopped (-C -), quiet but failing loudly', async () => {
    const argv = ftpFetchArgv(URL, PART, { resume: true, platform: 'linux' });
    expect(argv[0]).toBe('curl');
    const { options, operands } = parse(argv.slice(1), takesValue);
    expect(Object.fromEntries(options)).toEqual({ '-f': undefined, '-s': undefined, '-S': undefined, '-C': '-', '-o': PART });
    expect(operands).toEqual([URL]);
    expect(await meaning('-C')).toMatch(/--continue-at <offset>\s+Resumed transfer offset/);
    expect(await meaning('-o')).toMatch(/--output <file>\s+Write to file instead of stdout/);
    expect(await meaning('-s')).toMatch(/--silent\s+Silent mode/);
    expect(await meaning('-S')).toMatch(/--show-error\s+Show error even when -s is used/);
    expect(await meaning('-f')).toMatch(/--fail\s/);
  });

  it('reads a text file to standard output: no -o, no -C', async () => {
    const argv = ftpFetchArgv(URL, '-', { platform: 'linux' });
    const { options, operands } = parse(argv.slice(1), takesValue);
    expect(Object.fromEntries(options)).toEqual({ '-f': undefined, '-s': undefined, '-S': undefined });
    expect(operands).toEqual([URL]);
    // The URL comes after `--`, so a URL can never be read as an option.
    expect(argv.at(-2)).toBe('--');
  });

  it("takes curl's missing file (exit 78) and missing directory (exit 9, CWD refused) as not found", () => {
    expect(ftpMissing('curl', 78, 'curl: (78) The file does not exist\n')).toBe(true);
    expect(ftpMissing('curl', 9, 'curl: (9) Server denied you to change to the given directory\n')).toBe(true);
    expect(ftpMissing('curl', 7, 'curl: (7) Failed to connect to 127.0.0.1 port 21: Connection refused\n')).toBe(false);
    expect(ftpMissing('curl', 67, 'curl: (67) Access denied: 530\n')).toBe(false);
  });

  it('picks the program by platform: fetch only on FreeBSD', () => {
    expect(ftpFetchArgv(URL, PART, { platform: 'freebsd' })[0]).toBe('fetch');
    for (const p of ['linux', 'darwin', 'openbsd'] as const) expect(ftpFetchArgv(URL, PART, { platform: p })[0]).toBe('curl');
    // Without resume the .part is written anew.
    expect(ftpFetchArgv(URL, PART, { platform: 'freebsd' })).not.toContain('-r');
    expect(ftpFetchArgv(URL, PART, { platform: 'linux' })).not.toContain('-C');
  });
});
