/** The rc.d script and the systemd unit shipped for `be pxe serve --config FILE`. */
import { describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const rcd = fileURLToPath(new URL('../../rc.d/be_pxe', import.meta.url));
const unit = fileURLToPath(new URL('../../systemd/be-pxe.service', import.meta.url));

async function has(program: string): Promise<boolean> {
  return (await execa('sh', ['-c', 'command -v "$1"', 'sh', program], { reject: false })).exitCode === 0;
}

describe('service files', () => {
  it('rc.d/be_pxe parses with sh -n and runs be pxe serve under daemon(8) with a pidfile', async () => {
    for (const shell of ['sh', 'dash', 'bash']) {
      if (!(await has(shell))) continue;
      const r = await execa(shell, ['-n', rcd], { reject: false });
      expect(r.exitCode, `${shell} -n: ${r.stderr}`).toBe(0);
    }
    const text = await readFile(rcd, 'utf8');
    expect(text).toMatch(/^\. \/etc\/rc\.subr$/m);
    expect(text).toMatch(/^rcvar=be_pxe_enable$/m);
    expect(text).toMatch(/^: \$\{be_pxe_config:="[^"]+"\}$/m);
    expect(text).toMatch(/^command="\/usr\/sbin\/daemon"$/m);
    expect(text).toMatch(/^command_args="[^"]*-p \$\{pidfile\}[^"]* pxe serve --config \$\{be_pxe_config\}"$/m);
    expect(text).toMatch(/^run_rc_command "\$1"$/m);
  });

  it('systemd/be-pxe.service passes systemd-analyze verify', async () => {
    const text = await readFile(unit, 'utf8');
    expect(text).toContain('\nExecStart=/usr/bin/env be pxe serve --config /etc/be/pxe.json\n');
    expect(text).toContain('\nRestart=on-failure\n');
    if (!(await has('systemd-analyze'))) return;
    const r = await execa('systemd-analyze', ['verify', unit], { reject: false });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });
});
