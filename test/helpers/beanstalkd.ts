import { execa } from 'execa';
import { connect, createServer } from 'node:net';

export interface Beanstalkd {
  port: number;
  /** "127.0.0.1:PORT", as `--broker` takes it. */
  address: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A real beanstalkd on a free loopback port, once it accepts connections. */
export async function startBeanstalkd(): Promise<Beanstalkd> {
  const port = await freePort();
  const proc = execa('beanstalkd', ['-l', '127.0.0.1', '-p', String(port)], { reject: false });
  for (let i = 0; i < 50; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    address: `127.0.0.1:${port}`,
    async stop() {
      proc.kill('SIGTERM');
      await proc.catch(() => {});
    },
  };
}
