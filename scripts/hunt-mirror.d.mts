/** Types of scripts/hunt-mirror.mjs (the demo's synthetic mirror), for the tests that use it. */
export const RELEASES: string[];
export const REGRESSION: string;
export const FLAKY: string;
export const FLAKY_RUNS: number[];
export const STEP: string;
export const WILD: string;
export const RUNS: number;
export const TEST: string;
export function bootMs(): Record<string, number[]>;
export function expectedVerdict(release: string): 'good' | 'bad' | 'flaky';
export function buildHuntMirror(root: string): string;
