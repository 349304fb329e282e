import { shJoin, shQuote } from '../sys/shell.js';
import type { HuntSpec } from './state.js';
import { TEST_DIR } from './broker.js';
import { releaseBeName, INSTALLED_SNAPSHOT } from './be-host.js';
import { jailRunPlan, bhyveRunPlan } from './methods.js';

/**
 * What `be -n hunt run` prints: the hunt as a /bin/sh script of `be` and program argv, one
 * release at a time (install once, snapshot, then per run: clone, mount, copy the test, run it by
 * the method, unmount, destroy). The same steps the hunt takes, without the bookkeeping.
 */
export async function huntPlanScript(spec: HuntSpec, root: string, testPath: string, installed: Set<string>): Promise<string> {
  const lines = ['#!/bin/sh', `# be hunt: ${spec.test.name} by ${spec.method} in ${spec.releases.length} release(s); the exit status of each run is its verdict`];
  const flags: string[] = [];
  if (spec.install.source) flags.push('-p', spec.install.source);
  if (spec.install.arch) flags.push('-a', spec.install.arch);
  if (spec.install.sets?.length) flags.push('--sets', spec.install.sets.join(','));
  if (spec.install.cache) flags.push('--cache', spec.install.cache);
  if (spec.install.offline) flags.push('--offline');
  for (const release of spec.releases) {
    const be = releaseBeName(root, release, spec.install.arch);
    lines.push('', `# release ${release}`);
    if (installed.has(`${be}@${INSTALLED_SNAPSHOT}`)) {
      lines.push(`# ${be}@${INSTALLED_SNAPSHOT} is ready`);
    } else {
      lines.push(shJoin(['be', 'create', '-l', 'flat', be]), shJoin(['be', 'install', '-r', release, ...flags, be]), shJoin(['zfs', 'snapshot', '-r', `${be}@${INSTALLED_SNAPSHOT}`]));
    }
    for (let run = 1; run <= spec.runs; run++) {
      const clone = `${be}.run${run}`;
      const dir = `/tmp/be-hunt.${release}.${run}`;
      const test = `${TEST_DIR}/${spec.test.name}`;
      lines.push(
        shJoin(['be', 'create', '-e', `${be}@${INSTALLED_SNAPSHOT}`, clone]),
        shJoin(['be', 'mount', clone, dir]),
        shJoin(['mkdir', '-p', `${dir}${TEST_DIR}`]),
        shJoin(['install', '-m', '755', testPath, `${dir}${test}`]),
      );
      const env = ['env', '-i', 'PATH=/sbin:/bin:/usr/sbin:/usr/bin', `BE_RELEASE=${release}`, `BE_RUN=${run}`];
      if (spec.method === 'jail') {
        const plan = await jailRunPlan(clone, dir, [test]);
        lines.push(`${shJoin([...env, 'timeout', `${Math.ceil(spec.timeoutMs / 1000)}`, ...plan.create])}; echo "${release} run ${run}: exit $?"`, shJoin(plan.remove) + ' || true');
      } else if (spec.method === 'bhyve') {
        lines.push('# bhyve: the guest needs its root over NFS (be sharenfs), its handle in the loader environment; then:');
        for (const argv of await bhyveRunPlan({ vm: `hunt-${release}-${run}`.slice(0, 31), hostPath: dir, env: [] })) lines.push(`# ${shJoin(argv)}`);
      } else {
        lines.push(`${shJoin([...env, 'timeout', `${Math.ceil(spec.timeoutMs / 1000)}`, 'chroot', dir, test])}; echo "${release} run ${run}: exit $?"`);
      }
      lines.push(shJoin(['be', 'umount', clone]), shJoin(['be', 'destroy', clone]), `rmdir ${shQuote(dir)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}
