/**
 * QEMU on Linux, the way bhyve boots a BE on FreeBSD: a PC (`pc` machine) with a virtio-net NIC
 * (vtnet(4) in FreeBSD's GENERIC; the guest's kernel finds its NIC by MAC, sys/nfs/nfs_diskless.c)
 * on a tap in the VM's private network (vmnet.ts), booting from the network: BIOS through iPXE's
 * virtio ROM (apt ipxe-qemu) or UEFI through OVMF (apt ovmf) with iPXE's EFI virtio driver.
 * SeaBIOS runs a NIC's option ROM only when the ROM's PCI data structure names the device's own
 * vendor and device ID, and Debian's pxe-virtio.rom names 1af4:1041, the non-transitional
 * (virtio 1.0) virtio-net, while QEMU's virtio-net-pci is the transitional 1af4:1000 unless
 * `disable-legacy=on`: so the BIOS guest gets the non-transitional device (FreeBSD drives it with
 * sys/dev/virtio/pci/virtio_pci_modern.c, whose probe takes device IDs 0x1040 and up, in 13.0 and
 * later). OVMF loads the ROM's EFI driver whatever the ID, and the driver takes both IDs, so the
 * UEFI guest keeps the transitional device (virtio_pci_legacy.c drives it in older releases too).
 * The firmware asks `be pxe serve` for a lease, which names the BE's boot file (pxeboot,
 * loader.efi) and its root path; it fetches the boot file over TFTP from the BE's /boot; what runs
 * next reads the rest over NFS from ganesha (see vmnet.ts for what FreeBSD's loader and kernel
 * need there).
 * Serial console on the terminal or in a log; the guest's reboot or power-off ends QEMU
 * (-no-reboot). KVM where /dev/kvm boots a guest (probed once with a tiny guest, the answer
 * cached), TCG otherwise.
 */
import { openVmNet } from './vmnet.js';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile, mkdtemp } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BeContext } from '../be/context.js';
import { BeError, UsageError } from '../sys/errors.js';
import { checkMac, checkMemory } from './method.js';

export const QEMU = 'qemu-system-x86_64';
export const IPXE_BIOS_ROM = '/usr/lib/ipxe/qemu/pxe-virtio.rom';
export const IPXE_EFI_ROM = '/usr/lib/ipxe/qemu/efi-virtio.rom';
export const OVMF = '/usr/share/ovmf/OVMF.fd';

export type Firmware = 'bios' | 'uefi';
export type Accel = 'kvm' | 'tcg';

export interface QemuOptions {
  name: string;
  firmware: Firmware;
  accel: Accel;
  memory: string;
  cpus: number;
  tap: string;
  mac: string;
  /** 'stdio' (the terminal, or the output be collects) or a file for the serial console. */
  console: 'stdio' | { file: string };
}

export function checkFirmware(text: string): Firmware {
  if (text !== 'bios' && text !== 'uefi') throw new UsageError(`invalid firmware '${text}': expected bios or uefi`);
  return text;
}

export function checkCpus(text: string | number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new UsageError(`invalid CPU count '${text}': expected 1 to 64`);
  return n;
}

/** qemu's -m takes a size with an M/G suffix; bare numbers are MiB there, bytes-ish nowhere: keep be's spelling (512M, 1G). */
function qemuMemory(text: string): string {
  checkMemory(text);
  return /\d$/.test(text) ? `${text}M` : text.toUpperCase();
}

/** The guest's NIC: virtio-net, non-transitional under SeaBIOS so that iPXE's ROM is run (see above). */
function nicDevice(firmware: Firmware): string {
  return firmware === 'uefi' ? 'virtio-net-pci' : 'virtio-net-pci,disable-legacy=on';
}

/** The qemu-system-x86_64 argv of one guest. */
export function qemuArgv(o: QemuOptions): string[] {
  const argv = [QEMU, '-name', o.name, '-machine', 'pc', '-accel', o.accel, '-m', qemuMemory(o.memory), '-smp', String(o.cpus)];
  if (o.firmware === 'uefi') argv.push('-bios', OVMF);
  argv.push(
    '-netdev', `tap,id=net0,ifname=${o.tap},script=no,downscript=no`,
    '-device', `${nicDevice(o.firmware)},netdev=net0,mac=${checkMac(o.mac)},romfile=${o.firmware === 'uefi' ? IPXE_EFI_ROM : IPXE_BIOS_ROM},bootindex=1`,
    '-vga', 'none', '-display', 'none', '-monitor', 'none', '-parallel', 'none',
    '-serial', o.console === 'stdio' ? 'stdio' : `file:${o.console.file}`,
    '-no-reboot',
  );
  return argv;
}

/** A random locally administered MAC in QEMU's range (52:54:00 with the local bit kept clear of others). */
export function randomVmMac(): string {
  return `52:54:00:${randomBytes(3).toString('hex').match(/../g)!.join(':')}`;
}

/**
 * The probe guest: a boot sector that writes 0x21 to the isa-debug-exit port (0xf4), which ends
 * QEMU with status (0x21 << 1) | 1 = 67. Only a guest that really ran under KVM exits so.
 */
export function probeBootSector(): Buffer {
  const b = Buffer.alloc(512);
  Buffer.from([0xb0, 0x21, 0xe6, 0xf4, 0xfa, 0xf4, 0xeb, 0xfd]).copy(b);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

export const PROBE_STATUS = 67;

export function probeArgv(disk: string): string[] {
  return [QEMU, '-machine', 'pc', '-accel', 'kvm', '-m', '16M', '-nodefaults', '-display', 'none', '-no-reboot', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-drive', `file=${disk},format=raw,if=ide`];
}

const CACHE = '/var/cache/be/kvm-probe.json';

/** The cache's key: the host kernel and the QEMU binary (a new one of either probes again). */
function probeKey(): string {
  const bin = ['/usr/bin', '/usr/local/bin'].map((d) => join(d, QEMU)).find((p) => existsSync(p));
  return `${release()} ${bin ?? QEMU} ${bin ? statSync(bin).mtimeMs : 0}`;
}

/** Whether KVM boots a guest here: /dev/kvm opened by QEMU and the probe guest run to its end; cached. */
export async function kvmWorks(): Promise<{ ok: boolean; reason: string }> {
  if (process.env.BE_QEMU_ACCEL === 'tcg') return { ok: false, reason: 'BE_QEMU_ACCEL=tcg' };
  if (!existsSync('/dev/kvm')) return { ok: false, reason: 'no /dev/kvm' };
  const key = probeKey();
  const cached = await readFile(CACHE, 'utf8').then((t) => JSON.parse(t) as { key: string; ok: boolean; reason: string }).catch(() => undefined);
  if (cached?.key === key) return { ok: cached.ok, reason: cached.reason };
  const dir = await mkdtemp(join(tmpdir(), 'be-kvm-probe-'));
  let answer: { ok: boolean; reason: string };
  try {
    const disk = join(dir, 'probe.img');
    await writeFile(disk, probeBootSector());
    const argv = probeArgv(disk);
    answer = await new Promise((resolve) => {
      execFile(argv[0], argv.slice(1), { timeout: 20_000, killSignal: 'SIGKILL' }, (error, _out, err) => {
        const code = error ? (error as { code?: number | string }).code : 0;
        if (code === PROBE_STATUS) resolve({ ok: true, reason: 'the probe guest ran' });
        else if (error && (error as { killed?: boolean }).killed) resolve({ ok: false, reason: 'the probe guest did not finish within 20 s' });
        else resolve({ ok: false, reason: String(err).trim().split('\n')[0] || `the probe guest ended with ${code}` });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  await mkdir('/var/cache/be', { recursive: true }).then(() => writeFile(CACHE, JSON.stringify({ key, ...answer }))).catch(() => {});
  return answer;
}

/** KVM when it works, else TCG, said in one line. */
export async function chooseAccel(ctx: BeContext, note?: (line: string) => void): Promise<Accel> {
  const kvm = await kvmWorks();
  if (kvm.ok) return 'kvm';
  const text = `KVM not usable here (${kvm.reason}): QEMU runs with TCG (slower)`;
  // a run's own log when it keeps one, else the user (a plan keeps it as a comment)
  if (note) note(`be: ${text}`);
  else ctx.runner.warn(text);
  return 'tcg';
}

/** The firmware files the guest needs, checked before anything is made. */
export function checkFirmwareFiles(firmware: Firmware): void {
  const files = firmware === 'uefi' ? [OVMF, IPXE_EFI_ROM] : [IPXE_BIOS_ROM];
  for (const f of files) if (!existsSync(f)) throw new BeError(`${f} missing: install ${f.includes('ovmf') ? 'ovmf' : 'ipxe-qemu'}`);
}

export interface QemuBootOptions {
  firmware?: Firmware;
  memory?: string;
  cpus?: number;
  mac?: string;
  /** Boot file for both firmwares (default: pxeboot for BIOS, loader.efi for UEFI). */
  bootFile?: string;
  /** Serial console into this file (default: the terminal). */
  console?: string;
  /** Put the guest on this existing bridge (no private network). */
  bridge?: string;
  /** End the guest after this long (SIGTERM, then SIGKILL 2 s later). */
  timeoutMs?: number;
  onOutput?: (text: string) => void;
  /** Where the progress lines go (KVM/TCG, the servers' log). */
  note?: (line: string) => void;
}

export interface QemuRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
  bootMs: number;
}

let taps = 0;

/**
 * Boot the BE whose root is mounted at PATH in QEMU from the network, until the guest powers off
 * (or the time limit). By default in a private network of its own (vmnet.ts), removed afterwards;
 * with `bridge`, on a tap on that bridge, where `be sharepxe` answers. Ctrl-C and SIGTERM end the
 * guest, then everything is removed.
 */
export async function runQemuBoot(ctx: BeContext, path: string, opts: QemuBootOptions = {}): Promise<QemuRun> {
  const firmware = opts.firmware ?? 'bios';
  checkFirmwareFiles(firmware);
  const memory = checkMemory(opts.memory ?? '512M');
  const cpus = checkCpus(opts.cpus ?? 1);
  const mac = checkMac(opts.mac ?? randomVmMac());
  const note = opts.note ?? ((l: string) => process.stderr.write(`${l}\n`));
  const accel = await chooseAccel(ctx, note);
  const console = opts.console ? { file: opts.console } : ('stdio' as const);
  const name = `be-${process.pid}-${taps}`;
  let close: () => Promise<void>;
  let prefix: string[] = [];
  let tap = 'tap0';
  if (opts.bridge) {
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(opts.bridge)) throw new UsageError(`invalid bridge '${opts.bridge}'`);
    tap = `bevt${process.pid % 1_000_000}.${taps++ % 100}`.slice(0, 15);
    await ctx.runner.change(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    close = async () => void (await ctx.runner.change(['ip', 'link', 'del', tap], { allowFailure: true }));
    try {
      await ctx.runner.change(['ip', 'link', 'set', tap, 'master', opts.bridge]);
      await ctx.runner.change(['ip', 'link', 'set', tap, 'up']);
    } catch (error) {
      await close();
      throw error;
    }
  } else {
    taps++;
    const t = performance.now();
    const net = await openVmNet(ctx, { path, mac, bootBios: opts.bootFile ?? 'pxeboot', bootEfi: opts.bootFile ?? 'loader.efi', log: (l) => note(`pxe: ${l}`) });
    close = net.close;
    prefix = net.exec;
    note(`VM ${name}: ${firmware.toUpperCase()} PXE boot of ${path} in namespace ${net.ns} (${net.guest}, server ${net.host})`);
    ctx.runner.measured(() => note(`VM ${name}: its network ready in ${ms(t)} ms`));
  }
  const argv = [...prefix, ...qemuArgv({ name, firmware, accel, memory, cpus, tap, mac, console })];
  let signal: ((sig: NodeJS.Signals) => void) | undefined;
  const onSignal = (sig: NodeJS.Signals) => signal?.(sig === 'SIGINT' ? 'SIGTERM' : sig);
  // QEMU runs in a process group of its own: a `be` that exits at once (a stopped `be worker`)
  // takes it along rather than leaving it running until the next start's cleanup
  const onExit = () => signal?.('SIGKILL');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);
  const t0 = performance.now();
  try {
    const r = await ctx.runner.stream(argv, {
      timeoutMs: opts.timeoutMs,
      onOutput: opts.onOutput,
      inherit: console === 'stdio' && !opts.onOutput,
      onStart: (s) => (signal = s),
    });
    return { ...r, bootMs: ms(t0) };
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    const ran = ms(t0);
    const t = performance.now();
    await close();
    ctx.runner.measured(() => note(`VM ${name}: QEMU ran ${ran} ms; its ${opts.bridge ? 'tap' : 'network'} removed in ${ms(t)} ms`));
  }
}

const ms = (since: number) => Math.round(performance.now() - since);
