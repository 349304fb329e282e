/**
 * Config files (`be pxe serve --config`, `be installerconfig --config`): a JSON or YAML mapping,
 * read by one loader with one rule for telling the two apart. The name decides first (.json is
 * JSON; .yaml and .yml are YAML); any other name is decided by the text (a document that opens
 * with `{` is JSON, anything else YAML). Every problem is one line naming the file as the flag
 * that gave it: `--config FILE: …`.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BeError } from './errors.js';

export type ConfigFormat = 'JSON' | 'YAML';

/** JSON or YAML, by NAME's extension, else by whether TEXT opens with `{`. */
export function configFormat(name: string, text: string): ConfigFormat {
  const ext = extname(name).toLowerCase();
  if (ext === '.json') return 'JSON';
  if (ext === '.yaml' || ext === '.yml') return 'YAML';
  return /^\s*\{/.test(text) ? 'JSON' : 'YAML';
}

/** The mapping in TEXT (read from NAME); an empty document is an empty mapping. */
export function parseConfigText(text: string, name: string): Record<string, unknown> {
  const format = configFormat(name, text);
  let data: unknown;
  try {
    data = format === 'JSON' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new BeError(`--config ${name}: not valid ${format}: ${(e as Error).message.split('\n')[0]}`);
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) throw new BeError(`--config ${name}: expected an object of settings`);
  return data as Record<string, unknown>;
}

/** Read and parse FILE. */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new BeError(`--config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseConfigText(text, file);
}
