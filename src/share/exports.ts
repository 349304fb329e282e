/** exports(5): the lines `be sharenfs` writes for one BE, and a parser for reading them back. */
import { render } from '../render/index.js';
import { BeError } from '../sys/errors.js';
import { netmaskOf, type ShareSpec } from './spec.js';

/** The client part of each line: one line per network (exports(5) allows one -network per line), all hosts on one. */
function clientFields(spec: ShareSpec): string[] {
  const fields = spec.networks.map((n) => `-network ${n.address} -mask ${netmaskOf(n)}`);
  if (spec.hosts.length > 0) fields.push(spec.hosts.join(' '));
  return fields.length > 0 ? fields : [''];
}

/** The body of the BE's block in /etc/exports: a line per file system and client set. */
export function exportsBlock(paths: string[], spec: ShareSpec): string {
  const flags: string[] = [];
  if (spec.maproot) flags.push(`-maproot=${spec.maproot}`);
  if (spec.ro) flags.push('-ro');
  const clients = clientFields(spec);
  const v4 = spec.v4Root ? clients.map((c) => (c ? `${spec.v4Root} ${c}` : spec.v4Root!)) : [];
  const lines = paths.flatMap((path) => clients.map((c) => ({ path, flags, clients: c })));
  return render('exports', { v4, lines });
}

export interface ExportsLine {
  v4: boolean;
  paths: string[];
  /** -opt=value or -opt (true). */
  options: Record<string, string | true>;
  network?: { address: string; mask: string };
  hosts: string[];
}

/** Parse exports(5) text: comments and blank lines skipped, backslash continuations joined. */
export function parseExports(text: string): ExportsLine[] {
  const joined = text.replace(/\\\n/g, ' ');
  const out: ExportsLine[] = [];
  for (const raw of joined.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') continue;
    out.push(parseExportsLine(line));
  }
  return out;
}

export function parseExportsLine(line: string): ExportsLine {
  const tokens = line.trim().split(/[ \t]+/);
  const entry: ExportsLine = { v4: false, paths: [], options: {}, hosts: [] };
  let i = 0;
  if (tokens[0] === 'V4:') {
    entry.v4 = true;
    i = 1;
  }
  while (i < tokens.length && tokens[i].startsWith('/')) entry.paths.push(tokens[i++]);
  if (entry.paths.length === 0) throw new BeError(`exports line has no path: '${line}'`);
  for (; i < tokens.length; i++) {
    const t = tokens[i];
    if (t === '-network' || t === '-mask') {
      const value = tokens[++i];
      if (value === undefined) throw new BeError(`exports line: ${t} without a value: '${line}'`);
      entry.network = entry.network ?? { address: '', mask: '' };
      if (t === '-network') {
        const [address, prefix] = value.split('/');
        entry.network.address = address;
        if (prefix !== undefined) entry.network.mask = `/${prefix}`;
      } else entry.network.mask = value;
    } else if (t.startsWith('-')) {
      const eq = t.indexOf('=');
      if (eq < 0) entry.options[t.slice(1)] = true;
      else entry.options[t.slice(1, eq)] = t.slice(eq + 1);
    } else entry.hosts.push(t);
  }
  return entry;
}
