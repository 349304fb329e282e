import Handlebars from 'handlebars';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BeError } from '../sys/errors.js';
import { templatesDir } from '../sys/paths.js';
import { shQuote } from '../sys/shell.js';

/**
 * The one Handlebars environment `be` renders its templates with. Templates are looked up as
 * `<name>.hbs` in the caller's template directory first (a user's overrides), then in the
 * package's templates/. HTML templates (names ending in .html) are escaped; everything else
 * (shell scripts, rc.conf, fstab, exports) is rendered verbatim and quotes through helpers.
 */
export interface RenderOptions {
  /** A directory whose `<name>.hbs` overrides the packaged template. */
  templateDir?: string;
}

const SH_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Double-quoted value for rc.conf/loader.conf style files (sh syntax): escapes \ " $ `. */
export function dqQuote(value: string): string {
  return `"${value.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

function makeEnvironment(): typeof Handlebars {
  const hb = Handlebars.create();
  // Single-quoted for /bin/sh: {{sh value}}
  hb.registerHelper('sh', (value: unknown) => shQuote(String(value ?? '')));
  // Double-quoted for rc.conf(5)/loader.conf(5): {{dq value}}
  hb.registerHelper('dq', (value: unknown) => dqQuote(String(value ?? '')));
  // KEY="value" with KEY checked: {{assign key value}}
  hb.registerHelper('assign', (key: unknown, value: unknown) => {
    const k = String(key);
    if (!SH_VAR.test(k)) throw new BeError(`bad variable name '${k}'`);
    return `${k}=${dqQuote(String(value ?? ''))}`;
  });
  hb.registerHelper('join', (list: unknown, sep: unknown) => (Array.isArray(list) ? list.join(typeof sep === 'string' ? sep : ' ') : ''));
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  hb.registerHelper('ne', (a: unknown, b: unknown) => a !== b);
  hb.registerHelper('concat', (...args: unknown[]) => args.slice(0, -1).map((a) => String(a ?? '')).join(''));
  hb.registerHelper('default', (value: unknown, fallback: unknown) => (value === undefined || value === null || value === '' ? fallback : value));
  hb.registerHelper('json', (value: unknown) => JSON.stringify(value));
  // Pad a column: {{pad value 16}}
  hb.registerHelper('pad', (value: unknown, width: unknown) => String(value ?? '').padEnd(Number(width) || 0));
  return hb;
}

const environment = makeEnvironment();
const compiled = new Map<string, HandlebarsTemplateDelegate>();

/** A user's template directory (--templates DIR) must exist and be a directory. */
export function checkTemplateDir(dir: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    throw new BeError(`template directory '${dir}' does not exist`);
  }
  if (!isDir) throw new BeError(`template directory '${dir}' is not a directory`);
}

/** Where `<name>.hbs` is found: the user's template directory, else the packaged one. */
export function templatePath(name: string, opts: RenderOptions = {}): string {
  if (!/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/.test(name) || name.includes('..')) throw new BeError(`bad template name '${name}'`);
  if (opts.templateDir) {
    checkTemplateDir(opts.templateDir);
    const own = join(opts.templateDir, `${name}.hbs`);
    if (existsSync(own)) return own;
  }
  const packaged = join(templatesDir(), `${name}.hbs`);
  if (!existsSync(packaged)) throw new BeError(`template '${name}' not found${opts.templateDir ? ` in ${opts.templateDir} or the packaged templates` : ''}`);
  return packaged;
}

/** Render the template NAME (templates/NAME.hbs) with DATA. */
export function render(name: string, data: unknown, opts: RenderOptions = {}): string {
  const path = templatePath(name, opts);
  let template = compiled.get(path);
  if (!template) {
    let source: string;
    try {
      source = readFileSync(path, 'utf8');
    } catch (error) {
      throw new BeError(`cannot read template ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    template = compileTemplate(source, name);
    compiled.set(path, template);
  }
  try {
    return template(data);
  } catch (error) {
    if (error instanceof BeError) throw error;
    throw new BeError(`template ${path}: ${oneLine((error as Error).message)}`);
  }
}

/**
 * Handlebars' message as one line. Its parse errors span four lines (where, the source line, a
 * caret, what it expected): the first and the last say it all.
 */
function oneLine(message: string): string {
  const lines = message.split('\n').map((l) => l.trim()).filter(Boolean);
  if (lines.length > 1 && /^Parse error/.test(lines[0])) return `${lines[0].replace(/:$/, '')}: ${lines[lines.length - 1]}`;
  return lines[0] ?? message;
}

/** Render template text directly (for tests and one-off templates). */
export function renderString(source: string, data: unknown, name = 'inline'): string {
  return compileTemplate(source, name)(data);
}

function compileTemplate(source: string, name: string): HandlebarsTemplateDelegate {
  return environment.compile(source, { noEscape: !name.endsWith('.html'), strict: false, preventIndent: true });
}
