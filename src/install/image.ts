import type { BeContext } from '../be/context.js';
import { BeError } from '../sys/errors.js';
export async function makeImage(_ctx: BeContext, _opts: { out: string; size: string; config?: string; name?: string; memory: string }): Promise<string> {
  throw new BeError('image: not implemented yet');
}
