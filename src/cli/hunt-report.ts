// `be hunt report`: a hunt's state as a table, JSON, JUnit XML or one HTML page.
// Loaded by src/cli/hunt.ts when the command runs.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BeError, UsageError } from '../sys/errors.js';
import { writeFileAtomic } from '../sys/files.js';
import { HuntStore, latestHunt } from '../hunt/state.js';
import { jsonReport, junitReport, tableReport } from '../hunt/report.js';
import { reportModel } from '../hunt/html.js';
import { render } from '../render/index.js';
import { minChangeOf } from '../hunt/spec.js';

const REPORT_FORMATS = ['table', 'json', 'junit', 'html'];

export async function huntReport(opts: { state?: string; format: string; out?: string; minChange?: string }): Promise<string | undefined> {
  // the flags first: a bad one is named before any state is looked for
  if (!REPORT_FORMATS.includes(opts.format)) throw new UsageError(`invalid --format '${opts.format}': expected ${REPORT_FORMATS.join(', ')}`);
  const analysis = { minChange: minChangeOf(opts.minChange) };
  const dir = resolve(opts.state ?? (await latestHunt()));
  const state = await HuntStore.read(dir);
  if (!state) throw new BeError(`no hunt in '${dir}'`);
  let text: string;
  switch (opts.format) {
    case 'table':
      text = tableReport(state, analysis);
      break;
    case 'json':
      text = jsonReport(state, analysis);
      break;
    case 'junit':
      text = junitReport(state, (log) => {
        try {
          return readFileSync(join(dir, log), 'utf8').slice(-8192);
        } catch {
          return '';
        }
      });
      break;
    case 'html':
      text = render('report.html', reportModel(state, analysis));
      break;
    default:
      throw new UsageError(`invalid --format '${opts.format}': expected ${REPORT_FORMATS.join(', ')}`);
  }
  if (!opts.out) return text;
  await writeFileAtomic(resolve(opts.out), text.endsWith('\n') ? text : `${text}\n`);
  return undefined;
}
