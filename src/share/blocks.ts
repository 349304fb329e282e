/**
 * Marked blocks: the part of a text file (exports, ganesha config, fstab) that belongs to `be`.
 *
 *   # be:begin zroot/ROOT/head
 *   ...lines be wrote...
 *   # be:end zroot/ROOT/head
 *
 * Everything outside the markers is the user's and is kept byte for byte.
 */
import { BeError } from '../sys/errors.js';

export const BEGIN = '# be:begin ';
export const END = '# be:end ';

export interface Block {
  id: string;
  /** The lines between the markers, each ending in '\n'. */
  body: string;
}

function checkId(id: string): void {
  if (id === '' || /[\s]/.test(id)) throw new BeError(`invalid block name '${id}'`);
}

/** Split TEXT into lines that keep their '\n' (the last may lack one). */
function lines(text: string): string[] {
  if (text === '') return [];
  const out = text.split(/(?<=\n)/);
  return out;
}

function markerId(line: string, marker: string): string | undefined {
  const l = line.replace(/\r?\n$/, '');
  return l.startsWith(marker) ? l.slice(marker.length).trim() : undefined;
}

/** The blocks `be` owns in TEXT, in file order. A begin without its end is an error. */
export function listBlocks(text: string, file = 'file'): Block[] {
  const found: Block[] = [];
  let open: Block | undefined;
  for (const line of lines(text)) {
    const b = markerId(line, BEGIN);
    const e = markerId(line, END);
    if (b !== undefined) {
      if (open) throw new BeError(`${file}: '${BEGIN}${b}' inside block '${open.id}'`);
      open = { id: b, body: '' };
    } else if (e !== undefined) {
      if (!open || open.id !== e) throw new BeError(`${file}: '${END}${e}' without its begin marker`);
      found.push(open);
      open = undefined;
    } else if (open) {
      open.body += line;
    }
  }
  if (open) throw new BeError(`${file}: block '${open.id}' has no '${END}${open.id}' line`);
  return found;
}

/**
 * Replace the block ID's body with BODY (null removes the block and its markers). A block that
 * does not exist yet is appended at the end. Text outside the block is untouched.
 */
export function setBlock(text: string, id: string, body: string | null, file = 'file'): string {
  checkId(id);
  listBlocks(text, file); // refuse damaged files before touching them
  if (body !== null && body !== '' && !body.endsWith('\n')) body += '\n';
  const out: string[] = [];
  let inside = false;
  let replaced = false;
  for (const line of lines(text)) {
    if (!inside && markerId(line, BEGIN) === id) {
      inside = true;
      if (body !== null) out.push(`${BEGIN}${id}\n`, body);
      continue;
    }
    if (inside) {
      if (markerId(line, END) === id) {
        inside = false;
        replaced = true;
        if (body !== null) out.push(line.endsWith('\n') ? line : `${line}\n`);
      }
      continue;
    }
    out.push(line);
  }
  if (!replaced && body !== null) {
    const last = out[out.length - 1];
    if (last !== undefined && !last.endsWith('\n')) out.push('\n');
    out.push(`${BEGIN}${id}\n`, body, `${END}${id}\n`);
  }
  return out.join('');
}

/** TEXT with every block removed: what the user wrote. */
export function userText(text: string): string {
  let out = text;
  for (const b of listBlocks(text)) out = setBlock(out, b.id, null);
  return out;
}
