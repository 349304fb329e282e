import { BeError } from '../sys/errors.js';

const COMPONENT = /^[A-Za-z0-9_.:-]+$/;
const MAX_NAME = 255;

function checkComponent(name: string, part: string, what: string): void {
  if (part === '') throw new BeError(`invalid ${what} name '${name}': empty component`);
  if (part === '.' || part === '..') throw new BeError(`invalid ${what} name '${name}': '${part}' is not allowed`);
  if (!COMPONENT.test(part)) {
    const bad = [...part].find((c) => !/[A-Za-z0-9_.:-]/.test(c)) ?? '';
    throw new BeError(`invalid ${what} name '${name}': character ${JSON.stringify(bad)} is not allowed`);
  }
}

/** A ZFS pool name: letters first, then the dataset component alphabet. */
export function checkPoolName(name: string, full = name, what = 'pool'): string {
  checkComponent(full, name, what);
  if (!/^[A-Za-z]/.test(name)) throw new BeError(`invalid ${what} name '${full}': pool name must begin with a letter`);
  if (/^(mirror|raidz|spare|log|draid)/.test(name) || /^c[0-9]/.test(name)) {
    throw new BeError(`invalid ${what} name '${full}': '${name}' is a reserved pool name`);
  }
  return name;
}

/** A filesystem name such as zroot/ROOT/default. */
export function checkDatasetName(name: string, what = 'dataset'): string {
  if (name.length > MAX_NAME) throw new BeError(`invalid ${what} name '${name.slice(0, 40)}…': longer than ${MAX_NAME}`);
  if (name.includes('@')) throw new BeError(`invalid ${what} name '${name}': '@' is not allowed here`);
  const parts = name.split('/');
  parts.forEach((p) => checkComponent(name, p, what));
  checkPoolName(parts[0], name, what);
  return name;
}

/** A snapshot name: dataset@snap. */
export function checkSnapshotName(name: string): string {
  const at = name.indexOf('@');
  if (at < 0) throw new BeError(`invalid snapshot name '${name}': missing '@'`);
  checkDatasetName(name.slice(0, at), 'snapshot');
  checkComponent(name, name.slice(at + 1), 'snapshot');
  return name;
}

/** A short name: one dataset component (a BE name, a snapshot suffix). */
export function checkComponentName(name: string, what: string): string {
  checkComponent(name, name, what);
  return name;
}

export function poolOf(dataset: string): string {
  return dataset.split('/')[0];
}

export function parentOf(dataset: string): string | undefined {
  const i = dataset.lastIndexOf('/');
  return i < 0 ? undefined : dataset.slice(0, i);
}
