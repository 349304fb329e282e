/**
 * exports(5) as FreeBSD's mountd reads it (usr.sbin/mountd/mountd.c): the lines `be sharenfs`
 * writes for one BE, the one shared set of `V4:` lines, and a parser that reads a file the way
 * mountd's get_line / nextfield / get_exportlist_one / do_opt do.
 *
 * What mountd.c implies, and this file follows:
 *  - one `-network` per line (a second is "network/host conflict"), and never a network and
 *    hosts on the same line; `-network` needs a mask (`-mask` or /len);
 *  - only -sec, -network and -mask on a `V4:` line; every `V4:` line must name the same root
 *    (the first one read wins, a different one is "different V4 dirpath" and dropped); lines
 *    naming that root add up, each one's clients are let into the NFSv4 tree;
 *  - the same client twice for one file system (or for the V4: root) is refused by the kernel's
 *    export list (the line is dropped as a "bad exports list line");
 *  - a comment is a line whose first field starts with '#'; a line ending in '\' continues;
 *  - a field longer than MNTNAMLEN (255) is "mountpoint too long".
 */
import { render } from '../render/index.js';
import { BeError } from '../sys/errors.js';
import { cidrOf, cidrString, maskPrefix, parseIpv4 } from '../net/ipv4.js';
import { netmaskOf, type ShareSpec } from './spec.js';
import { BEGIN, listBlocks, setBlock, userText } from './blocks.js';

/** mountd.c: a field longer than MNTNAMLEN (rpcsvc/mount.h) is refused. */
export const MNTNAMLEN = 255;

/** The block that holds be's `V4:` lines, shared by every BE that asked for --v4-root. */
export const V4_BLOCK = 'nfsv4-root';

/** In a BE's block: the NFSv4 root and client set the BE needs (a comment to mountd). */
const V4_NEED = '# be:v4 ';

/** The client part of each line: one line per network (exports(5) allows one -network per line), all hosts on one. */
function clientFields(spec: ShareSpec): string[] {
  const fields = spec.networks.map((n) => `-network ${n.address} -mask ${netmaskOf(n)}`);
  if (spec.hosts.length > 0) fields.push(spec.hosts.join(' '));
  return fields.length > 0 ? fields : [''];
}

/**
 * The body of the BE's block in /etc/exports: a line per file system and client set. With a V4
 * root the block also records, as comments, which root and clients the BE needs; the `V4:`
 * lines themselves are written once for all BEs (v4Lines).
 */
export function exportsBlock(paths: string[], spec: ShareSpec): string {
  for (const p of [...paths, ...(spec.v4Root ? [spec.v4Root] : [])]) {
    if (p.length > MNTNAMLEN) throw new BeError(`exports path '${p.slice(0, 40)}...' is longer than ${MNTNAMLEN} characters, which mountd refuses`);
  }
  const flags: string[] = [];
  if (spec.maproot) flags.push(`-maproot=${spec.maproot}`);
  if (spec.ro) flags.push('-ro');
  const clients = clientFields(spec);
  const v4 = spec.v4Root ? clients.map((c) => `${V4_NEED}${spec.v4Root}${c ? ` ${c}` : ''}`) : [];
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
  /** The physical line (1-based) the logical line starts on. */
  lineNo: number;
}

/** mountd's get_line: logical lines, trailing blanks dropped, `\` at the end joins the next line, blank lines skipped. */
function logicalLines(text: string): Array<{ text: string; lineNo: number }> {
  const out: Array<{ text: string; lineNo: number }> = [];
  const phys = text.split('\n');
  if (phys[phys.length - 1] === '') phys.pop();
  let cur = '';
  let start = 0;
  for (let i = 0; i < phys.length; i++) {
    if (cur === '') start = i + 1;
    const m = /[ \t\\]*$/.exec(phys[i])!;
    const cont = m[0].includes('\\');
    cur += phys[i].slice(0, m.index) + (cont ? ' ' : '');
    if (cont || cur === '') continue;
    out.push({ text: cur, lineNo: start });
    cur = '';
  }
  if (cur !== '') out.push({ text: cur, lineNo: start });
  return out;
}

/** mountd's nextfield: blank-separated fields; quotes and a backslash keep a blank inside one. */
function fields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (i >= line.length) break;
    const start = i;
    let quote = '';
    for (; i < line.length; i++) {
      const c = line[i];
      if (quote) {
        if (c === quote) quote = '';
      } else if (c === '\\' && i + 1 < line.length) i++;
      else if (c === "'" || c === '"') quote = c;
      else if (c === ' ' || c === '\t') break;
    }
    out.push(line.slice(start, i));
  }
  return out;
}

/** Options of do_opt that take an argument (as -opt=arg or -opt arg). */
const WITH_ARG = new Set(['maproot', 'mapall', 'root', 'r', 'mask', 'm', 'network', 'n', 'sec']);

/**
 * Parse exports(5) text as mountd reads it (comments, continuations, V4:, -opt arg and -opt=arg).
 * A line mountd would drop whole (no path, -network or -mask without a value) is left out.
 */
export function parseExports(text: string): ExportsLine[] {
  const out: ExportsLine[] = [];
  for (const { text: line, lineNo } of logicalLines(text)) {
    const f = fields(line);
    if (f.length === 0 || f[0].startsWith('#')) continue;
    const entry: ExportsLine = { v4: false, paths: [], options: {}, hosts: [], lineNo };
    let bad = false;
    if (f[0].startsWith('V4:')) {
      entry.v4 = true;
      if (f[0] === 'V4:') f.shift();
      else f[0] = f[0].slice(3);
    }
    for (let i = 0; i < f.length; i++) {
      const t = f[i];
      if (t.startsWith('-')) {
        for (const opt of t.slice(1).split(',')) {
          const eq = opt.indexOf('=');
          let name = eq < 0 ? opt : opt.slice(0, eq);
          let value: string | true = eq < 0 ? true : opt.slice(eq + 1);
          if (value === true && WITH_ARG.has(name) && !t.includes(',') && f[i + 1] !== undefined && !f[i + 1].startsWith('-')) value = f[++i];
          if (name === 'n') name = 'network';
          if (name === 'm') name = 'mask';
          if (name === 'network' || name === 'mask') {
            if (value === true) {
              bad = true;
              continue;
            }
            entry.network = entry.network ?? { address: '', mask: '' };
            if (name === 'network') {
              const [address, prefix] = value.split('/');
              entry.network.address = address;
              if (prefix !== undefined) entry.network.mask = `/${prefix}`;
            } else entry.network.mask = value;
          } else entry.options[name] = value;
        }
      } else if (t.startsWith('/') && entry.hosts.length === 0 && Object.keys(entry.options).length === 0 && !entry.network) {
        entry.paths.push(t);
      } else entry.hosts.push(t);
    }
    // mountd drops such a line ("bad exports list line", "V4:root, no dirp, ignored")
    if (entry.paths.length === 0 || bad) continue;
    out.push(entry);
  }
  return out;
}

/** What a line's clients are, one key each: net:ADDR/PREFIX, host:NAME, or default (everyone). */
export function clientKeys(line: ExportsLine): string[] {
  if (line.network) return [`net:${networkKey(line.network.address, line.network.mask)}`];
  if (line.hosts.length > 0) return line.hosts.map((h) => `host:${h}`);
  return ['default'];
}

/** Normalised network: mountd's get_net reads 10.1 as 10.1.0.0 and, with no mask, a classful one. */
function networkKey(address: string, mask: string): string {
  const parts = address.split('.');
  if (parts.length > 4 || !parts.every((p) => /^\d{1,3}$/.test(p))) return `${address}/${mask}`;
  while (parts.length < 4) parts.push('0');
  const value = parseIpv4(parts.join('.'));
  if (value === undefined) return `${address}/${mask}`;
  let prefix: number | undefined;
  if (mask.startsWith('/')) prefix = Number(mask.slice(1));
  else if (mask) {
    const m = parseIpv4(mask);
    prefix = m === undefined ? undefined : maskPrefix(m);
  } else {
    const first = Number(parts[0]);
    prefix = first < 128 ? 8 : first < 192 ? 16 : first < 224 ? 24 : 32;
  }
  if (prefix === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return `${address}/${mask}`;
  return cidrString(cidrOf(value, prefix));
}

/** The NFSv4 root mountd will use: the path of the first `V4:` line in TEXT (or undefined). */
export function v4RootOf(text: string): string | undefined {
  return parseExports(text).find((l) => l.v4)?.paths[0];
}

interface V4Need {
  be: string;
  root: string;
  line: ExportsLine;
}

/** The V4 root and clients each BE block asks for (its `# be:v4` comments). */
function v4Needs(text: string, file: string): V4Need[] {
  const out: V4Need[] = [];
  for (const b of listBlocks(text, file)) {
    if (b.id === V4_BLOCK) continue;
    for (const l of b.body.split('\n')) {
      if (!l.startsWith(V4_NEED)) continue;
      const [line] = parseExports(`V4: ${l.slice(V4_NEED.length)}\n`);
      out.push({ be: b.id, root: line.paths[0], line });
    }
  }
  return out;
}

/**
 * The `V4:` lines be owns: one per distinct client set that any shared BE needs, none that the
 * user's own `V4:` lines (same root) already give (a client twice is refused by the kernel).
 */
function v4Lines(text: string, file: string): { root?: string; body: string | null; userRoot?: string } {
  const needs = v4Needs(text, file);
  const user = parseExports(userText(text)).filter((l) => l.v4);
  const userRoot = user[0]?.paths[0];
  if (needs.length === 0) return { body: null, userRoot };
  const root = needs[0].root;
  const have = new Set(user.filter((l) => l.paths[0] === root).flatMap(clientKeys));
  const lines: string[] = [];
  const hosts: string[] = [];
  for (const { line } of needs) {
    if (line.hosts.length > 0 && !line.network) {
      for (const h of line.hosts.filter((x) => !have.has(`host:${x}`))) {
        have.add(`host:${h}`);
        hosts.push(h);
      }
      continue;
    }
    const [key] = clientKeys(line);
    if (have.has(key)) continue;
    have.add(key);
    lines.push(line.network ? `V4: ${root} -network ${line.network.address} -mask ${line.network.mask}` : `V4: ${root}`);
  }
  if (hosts.length > 0) lines.push(`V4: ${root} ${hosts.join(' ')}`);
  return { root, body: lines.length > 0 ? `${lines.join('\n')}\n` : null, userRoot };
}

/** Refusals mountd.c implies, checked before the BE's block (BODY) goes into TEXT (without it). */
function checkAgainst(others: string, be: string, body: string, file: string): void {
  const mine = parseExports(body);
  const ours = new Set<string>();
  for (const l of mine) for (const p of l.paths) for (const k of clientKeys(l)) ours.add(`${p} ${k}`);
  const withoutV4 = setBlock(others, V4_BLOCK, null, file);
  for (const l of parseExports(withoutV4)) {
    if (l.v4) continue;
    for (const p of l.paths) {
      for (const k of clientKeys(l)) {
        if (ours.has(`${p} ${k}`)) throw new BeError(`${file} line ${l.lineNo} already exports ${p} to ${k === 'default' ? 'everyone' : k.slice(k.indexOf(':') + 1)}: mountd refuses the same client twice for one file system`);
      }
    }
  }
  const need = v4Needs(setBlock(withoutV4, be, body, file), file).find((n) => n.be === be);
  if (!need) return;
  const userRoot = parseExports(userText(withoutV4)).find((l) => l.v4)?.paths[0];
  if (userRoot !== undefined && userRoot !== need.root) {
    throw new BeError(`${file} already has 'V4: ${userRoot}': mountd takes one NFSv4 root, cannot add ${need.root}`);
  }
  const other = v4Needs(withoutV4, file).find((n) => n.root !== need.root);
  if (other) throw new BeError(`${file}: boot environment '${other.be}' is shared with NFSv4 root ${other.root}: mountd takes one, cannot add ${need.root}`);
}

export interface ExportsEdit {
  text: string;
  /** Set when the user's own `V4:` line is the root be's clients hang below. */
  usesUserRoot?: string;
}

/**
 * TEXT with the BE's block set to BODY (null removes it) and be's `V4:` block rebuilt from every
 * BE block that still needs one (removed with the last). Refuses what mountd would drop.
 */
export function editExports(text: string, be: string, body: string | null, file: string): ExportsEdit {
  const others = setBlock(migrate(text, file), be, null, file);
  if (body !== null) checkAgainst(others, be, body, file);
  let next = setBlock(others, be, body, file);
  const v4 = v4Lines(next, file);
  next = setBlock(next, V4_BLOCK, v4.body, file);
  const needed = body !== null && v4Needs(next, file).some((n) => n.be === be);
  if (body !== null) checkContinuations(next, file);
  return { text: next, usesUserRoot: needed && v4.userRoot === v4.root ? v4.userRoot : undefined };
}

/** Blocks written before the V4: block existed carry `V4:` lines of their own: they become needs. */
function migrate(text: string, file: string): string {
  let out = text;
  for (const b of listBlocks(text, file)) {
    if (b.id === V4_BLOCK || !/^V4:/m.test(b.body)) continue;
    out = setBlock(out, b.id, b.body.replace(/^V4:[ \t]*/gm, V4_NEED), file);
  }
  return out;
}

/** A user line ending in '\\' right before a be marker: mountd's get_line would join the two. */
function checkContinuations(text: string, file: string): void {
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].startsWith(BEGIN) && /\\[ \t]*$/.test(lines[i - 1])) {
      throw new BeError(`${file} line ${i}: ends in '\\', so mountd would join be's lines to it`);
    }
  }
}
