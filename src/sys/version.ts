/** Replaced at build time from package.json. */
declare const __BE_VERSION__: string | undefined;
export const VERSION: string = typeof __BE_VERSION__ === 'string' ? __BE_VERSION__ : '0.0.0-dev';
