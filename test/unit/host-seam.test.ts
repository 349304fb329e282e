import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Runner } from '../../src/sys/run.js';

const SRC = fileURLToPath(new URL('../../src', import.meta.url));

async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out;
}

describe('the host decides: no module outside src/sys and src/cli asks whether it is a dry run', () => {
  it('reads of dryRun are only in src/sys and src/cli', async () => {
    const found: string[] = [];
    for (const file of await sources(SRC)) {
      const rel = relative(SRC, file);
      if (rel.startsWith('sys/') || rel.startsWith('cli/')) continue;
      const lines = (await readFile(file, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        // makeContext takes the flag and hands it to the Runner it builds: the host being made, not asked
        const asked = line.replace(/\bdryRun\?: boolean|\bdryRun: opts\.dryRun\b/g, '');
        if (/\bdryRun\b/.test(asked)) found.push(`${rel}:${i + 1}`);
      });
    }
    expect(found).toEqual([]);
  });
});

describe('Runner.requireSystem: work only FreeBSD programs can do', () => {
  it('a live host of another system refuses it, a FreeBSD host takes it', () => {
    expect(() => new Runner({ system: 'linux' }).requireSystem('freebsd', 'jail(8)')).toThrow(/^jail\(8\) needs FreeBSD \(use -n to see the plan\)$/);
    expect(() => new Runner({ system: 'freebsd' }).requireSystem('freebsd', 'jail(8)')).not.toThrow();
  });

  it('a plan takes it and checks first, once: run here it refuses as the live host does, on FreeBSD it goes on', async () => {
    const plan = new Runner({ dryRun: true, system: 'linux' });
    plan.requireSystem('freebsd', 'jail(8)');
    await plan.change(['echo', 'changed']);
    plan.requireSystem('freebsd', 'bhyve(8)');
    const script = plan.scriptText();
    expect(script.split('\n').filter((l) => l.includes('uname'))).toHaveLength(1);
    const here = await execa('sh', ['-c', script], { reject: false });
    expect([here.exitCode, here.stderr, here.stdout]).toEqual([process.platform === 'freebsd' ? 0 : 1, process.platform === 'freebsd' ? '' : 'be: jail(8) needs FreeBSD', process.platform === 'freebsd' ? 'changed' : '']);
    // what uname -s prints on FreeBSD (usr.bin/uname/uname.c: kern.ostype)
    const freebsd = await execa('sh', ['-c', `uname() { echo FreeBSD; }\n${script}`], { reject: false });
    expect([freebsd.exitCode, freebsd.stdout]).toEqual([0, 'changed']);
  });
});

describe('Runner.change with scriptVar: a change whose output later steps use', () => {
  /** The same steps on a host: attach prints a unit, the later steps name its device. */
  async function steps(runner: Runner): Promise<void> {
    const unit = (await runner.change(['printf', 'md%s\\n', '7'], { scriptVar: 'md' })).stdout.trim();
    await runner.change(['printf', '%s %s\\n', unit, `/dev/${unit}p1`]);
    await runner.change(['printf', "%s\\n", `it's "${unit}" $HOME`]);
  }

  it('a plan keeps the output in the variable and prints the words holding it as "${md}"; run, it does what the live host did', async () => {
    const printed: string[] = [];
    const live = new Runner({ verbose: true, err: (l) => printed.push(l) });
    await steps(live);
    const plan = new Runner({ dryRun: true });
    await steps(plan);
    const lines = plan.scriptText().split('\n');
    expect(lines[2]).toBe("md=$(printf 'md%s\\n' 7)");
    expect(lines[3]).toBe(`printf '%s %s\\n' "\${md}" "/dev/\${md}p1"`);
    expect(lines[4]).toBe(`printf '%s\\n' "it's \\"\${md}\\" \\$HOME"`);
    const ran = await execa('sh', ['-c', plan.scriptText()]);
    expect(ran.stdout).toBe('md7 /dev/md7p1\nit\'s "md7" $HOME');
    // the live host ran the words with the unit itself
    expect(printed).toContain('+ printf \'%s %s\\n\' md7 /dev/md7p1');
  });
});
