import { createServer } from 'node:net';

/**
 * Hands out free TCP ports for instances. The OS picks a free port (listen on 0); ports handed out and not yet
 * released are remembered so two instances starting at the same moment never receive the same one, even though
 * neither has bound it yet.
 */
export class PortAllocator {
  private readonly inUse = new Set<number>();

  constructor(private readonly host: string) {}

  async allocate(): Promise<number> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await this.probe();
      if (!this.inUse.has(port)) {
        this.inUse.add(port);
        return port;
      }
    }
    throw new Error('could not find a free port');
  }

  /** Marks a port as taken that an adopted instance (records.ts) already listens on. */
  reserve(port: number): void {
    this.inUse.add(port);
  }

  release(port: number | undefined): void {
    if (port !== undefined) this.inUse.delete(port);
  }

  private probe(): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once('error', reject);
      server.listen({ host: this.host, port: 0, exclusive: true }, () => {
        const address = server.address();
        const port = typeof address === 'object' && address !== null ? address.port : 0;
        server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
      });
    });
  }
}
