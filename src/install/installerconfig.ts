import { BeError } from '../sys/errors.js';
export type InstallerConfig = Record<string, unknown>;
export function flagsToConfig(_opts: Record<string, unknown>): InstallerConfig {
  return {};
}
export async function loadInstallerConfig(_file: string | undefined, _flags: InstallerConfig): Promise<InstallerConfig> {
  throw new BeError('installerconfig: not implemented yet');
}
export function renderInstallerConfig(_c: InstallerConfig): string {
  return '';
}
