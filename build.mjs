// Bundles the CLI into dist/ so `be` starts with one small file and loads the rest on demand.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

rmSync(new URL('./dist', import.meta.url), { recursive: true, force: true });

await build({
  // The TFTP server's worker threads load their own entry (Node cannot start a worker from .ts);
  // it lands beside the server's chunk, where src/net/tftp/workers.ts looks for it.
  entryPoints: { main: 'src/cli/main.ts', 'tftp-worker': 'src/net/tftp/worker.ts' },
  outdir: 'dist',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: false,
  banner: { js: "import { createRequire as __beRequire } from 'node:module'; const require = __beRequire(import.meta.url);" },
  define: { __BE_VERSION__: JSON.stringify(version) },
  // koffi (src/net/libc.ts) finds its prebuilt native module beside its own files at run time.
  external: ['koffi'],
  logLevel: 'warning',
});
