import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BeError } from '../sys/errors.js';
import { templatesDir } from '../sys/paths.js';

export interface LayoutDataset {
  /** Path under the BE root, '' for the root itself. */
  path: string;
  properties: Record<string, string>;
}
export interface Layout {
  name: string;
  description: string;
  datasets: LayoutDataset[];
}

const PATH = /^[A-Za-z0-9_.:-]+(\/[A-Za-z0-9_.:-]+)*$/;
const PROP = /^[a-z][a-z0-9_]*(:[A-Za-z0-9_.:-]+)?$|^[a-z0-9_.-]+:[A-Za-z0-9_.:-]+$/;

export function knownLayouts(): string[] {
  return readdirSync(join(templatesDir(), 'layouts'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();
}

export function loadLayout(name: string): Layout {
  const known = knownLayouts();
  if (!known.includes(name)) throw new BeError(`unknown layout '${name}' (known: ${known.join(', ')})`);
  return parseLayout(readFileSync(join(templatesDir(), 'layouts', `${name}.json`), 'utf8'), name);
}

export function loadLayoutFile(file: string): Layout {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new BeError(`cannot read layout file '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseLayout(text, file);
}

/** Validate a layout document; every problem is one line naming the bad value. */
export function parseLayout(text: string, name: string): Layout {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new BeError(`layout '${name}': invalid JSON: ${(error as Error).message}`);
  }
  const d = doc as { description?: unknown; datasets?: unknown };
  if (typeof d !== 'object' || d === null || !Array.isArray(d.datasets)) {
    throw new BeError(`layout '${name}': expected an object with a "datasets" array`);
  }
  const seen = new Set<string>();
  const datasets: LayoutDataset[] = d.datasets.map((entry: unknown, i: number) => {
    const e = entry as { path?: unknown; properties?: unknown };
    if (typeof e !== 'object' || e === null || typeof e.path !== 'string') {
      throw new BeError(`layout '${name}': datasets[${i}] needs a string "path"`);
    }
    const path = e.path.replace(/^\/+|\/+$/g, '');
    if (path !== '' && (!PATH.test(path) || path.split('/').some((c) => c === '.' || c === '..'))) {
      throw new BeError(`layout '${name}': invalid dataset path '${e.path}'`);
    }
    if (seen.has(path)) throw new BeError(`layout '${name}': dataset path '${e.path}' appears twice`);
    seen.add(path);
    const props: Record<string, string> = {};
    for (const [k, v] of Object.entries((e.properties ?? {}) as Record<string, unknown>)) {
      if (!PROP.test(k)) throw new BeError(`layout '${name}': invalid property name '${k}'`);
      if (typeof v !== 'string' || /[\n\0]/.test(v)) throw new BeError(`layout '${name}': property ${k} of '${e.path}' must be a one-line string`);
      props[k] = v;
    }
    return { path, properties: props };
  });
  if (datasets[0]?.path !== '') throw new BeError(`layout '${name}': the first dataset must be the BE root (path "")`);
  for (const ds of datasets) {
    const parent = ds.path.includes('/') ? ds.path.slice(0, ds.path.lastIndexOf('/')) : ds.path === '' ? undefined : '';
    if (parent !== undefined && !seen.has(parent)) throw new BeError(`layout '${name}': '${ds.path}' comes without its parent '${parent}'`);
  }
  // Parents before children, whatever order the file used.
  datasets.sort((a, b) => depth(a.path) - depth(b.path));
  return { name, description: typeof d.description === 'string' ? d.description : '', datasets };
}

function depth(path: string): number {
  return path === '' ? 0 : path.split('/').length;
}
