/** Quoting for the /bin/sh scripts that --dry-run prints. Never used to run anything. */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

export function shQuote(arg: string): string {
  if (arg !== '' && SAFE.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function shJoin(argv: readonly string[]): string {
  return argv.map(shQuote).join(' ');
}

/** Shell lines that write `content` to `path` byte for byte, then set its mode. */
export function shWriteFile(path: string, data: string | Buffer, mode?: number): string {
  const lines: string[] = [];
  const content = typeof data === 'string' ? data : data.toString('utf8');
  if (typeof data !== 'string' && (!Buffer.from(content, 'utf8').equals(data) || content.includes('\0'))) {
    // not text: printf(1) octal escapes, byte for byte, in lines of a shell's comfortable length
    lines.push(`: > ${shQuote(path)}`);
    for (let i = 0; i < data.length; i += 1000) {
      const escaped = [...data.subarray(i, i + 1000)].map((b) => `\\${b.toString(8).padStart(3, '0')}`).join('');
      lines.push(`printf '${escaped}' >> ${shQuote(path)}`);
    }
  } else if (content.endsWith('\n')) {
    let tag = 'BE_EOF';
    while (content.split('\n').includes(tag)) tag += '_';
    lines.push(`cat > ${shQuote(path)} <<'${tag}'\n${content}${tag}`);
  } else {
    lines.push(`printf '%s' ${shQuote(content)} > ${shQuote(path)}`);
  }
  if (mode !== undefined) lines.push(`chmod ${mode.toString(8)} ${shQuote(path)}`);
  return lines.join('\n');
}
