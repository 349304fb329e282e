import { shJoin, shQuote, shWriteFile } from '../sys/shell.js';
import type { HuntSpec } from './state.js';
import { TEST_DIR } from './exec.js';
import { releaseBeName, INSTALLED_SNAPSHOT } from './be-host.js';
import { jailRunPlan, bhyveRunPlan, guestRcLocal, vmNetwork, vmNameFor, DEFAULT_VM, GUEST_OUTPUT, GUEST_STATUS, type VmSettings } from './methods.js';
import { huntId } from './state.js';
import { nfsRootEnv } from '../boot/bhyve.js';

/**
 * What `be -n hunt run` prints: the hunt as a /bin/sh script of `be` and program argv, one
 * release at a time (install once, snapshot, then per run: clone, mount, copy the test, run it by
 * the method, unmount, destroy). The same steps the hunt takes, without the bookkeeping.
 */
export async function huntPlanScript(spec: HuntSpec, root: string, testPath: string, installed: Set<string>, vm: VmSettings = DEFAULT_VM): Promise<string> {
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
      lines.push(shJoin(['be', 'create', '-e', `${be}@${INSTALLED_SNAPSHOT}`, clone]));
      if (spec.method === 'bhyve') {
        lines.push(...(await bhyvePlan(spec, vm, clone, dir, testPath, test, release, run)));
        continue;
      }
      lines.push(shJoin(['be', 'mount', clone, dir]), shJoin(['mkdir', '-p', `${dir}${TEST_DIR}`]), shJoin(['install', '-m', '755', testPath, `${dir}${test}`]));
      const env = ['env', '-i', 'PATH=/sbin:/bin:/usr/sbin:/usr/bin', `BE_RELEASE=${release}`, `BE_RUN=${run}`];
      if (spec.method === 'jail') {
        const plan = await jailRunPlan(clone, dir, [test]);
        lines.push(`${shJoin([...env, 'timeout', `${Math.ceil(spec.timeoutMs / 1000)}`, ...plan.create])}; echo "${release} run ${run}: exit $?"`, shJoin(plan.remove) + ' || true');
      } else {
        lines.push(`${shJoin([...env, 'timeout', `${Math.ceil(spec.timeoutMs / 1000)}`, 'chroot', dir, test])}; echo "${release} run ${run}: exit $?"`);
      }
      lines.push(shJoin(['be', 'umount', clone]), shJoin(['be', 'destroy', clone]), `rmdir ${shQuote(dir)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * One bhyve run as shell lines: share the clone to the guest only, put the test and the guest's
 * rc.local in, ask mountd for the clone's file handle (be nfshandle), bhyveload with the NFS root
 * variables, bhyve under the time limit, bhyvectl --destroy, then the status the guest left.
 */
async function bhyvePlan(spec: HuntSpec, vm: VmSettings, clone: string, dir: string, testPath: string, test: string, release: string, run: number): Promise<string[]> {
  const net = await vmNetwork(vm);
  const mac = '02:00:00:00:00:01';
  const env = { PATH: '/sbin:/bin:/usr/sbin:/usr/bin', HOME: '/root', BE_RELEASE: release, BE_RUN: String(run), BE_HUNT: huntId(spec) };
  const nfsEnv = nfsRootEnv({ mac, ip: net.ip, netmask: net.netmask, server: net.server, path: dir, handle: Buffer.alloc(0) }).map(([k, v]): [string, string] =>
    k === 'boot.nfsroot.nfshandle' ? [k, '@HANDLE@'] : k === 'boot.nfsroot.nfshandlelen' ? [k, '@LENGTH@'] : [k, v],
  );
  const vmName = vmNameFor(clone);
  const [load, boot, destroy] = await bhyveRunPlan({ vm: vmName, hostPath: dir, env: nfsEnv, memory: net.memory, tap: net.tap, mac });
  const withHandle = shJoin(load).replace('boot.nfsroot.nfshandle=@HANDLE@', '"boot.nfsroot.nfshandle=${nfs% *}"').replace('boot.nfsroot.nfshandlelen=@LENGTH@', '"boot.nfsroot.nfshandlelen=${nfs#* }"');
  return [
    shJoin(['be', 'sharenfs', '--host', net.ip, '--maproot', 'root', '--path', dir, clone]),
    shJoin(['mkdir', '-p', `${dir}${TEST_DIR}`]),
    shJoin(['install', '-m', '755', testPath, `${dir}${test}`]),
    `# the guest's /etc/rc.local: run the test, keep its output and status, power off`,
    shWriteFile(`${dir}/etc/rc.local`, guestRcLocal([test], env), 0o755),
    `nfs=$(${shJoin(['be', 'nfshandle', net.server, dir])})`,
    withHandle,
    `${shJoin(['timeout', `${Math.ceil(spec.timeoutMs / 1000)}`, ...boot])}; ${shJoin(destroy)} || true`,
    `echo "${release} run ${run}: exit $(cat ${shQuote(dir + GUEST_STATUS)} 2>/dev/null || echo 'none (no status file: aborted)')"; cat ${shQuote(dir + GUEST_OUTPUT)} 2>/dev/null`,
    shJoin(['be', 'unsharenfs', clone]),
    shJoin(['be', 'destroy', clone]),
    `rmdir ${shQuote(dir)}`,
  ];
}
