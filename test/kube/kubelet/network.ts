import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';

/**
 * A pod's network: its own network namespace (only loopback, brought up), so every pod can listen on the same port
 * like on a cluster. The pod is reached at its pod IP (a distinct 127.x.y.z address on the host) on its declared
 * ports: the kubelet listens there and relays each connection over a Unix socket (which crosses namespaces) to a
 * small relay process inside the namespace, which connects to the port there. That relay is the pod's sandbox
 * process (the "pause" container): the containers join its namespace with nsenter.
 *
 * Egress: `hostPorts` are host TCP ports the pod reaches at 127.0.0.1:<port> (a stand-in for cluster Services such
 * as Kiln's own API); nothing else outside the pod is reachable.
 *
 * Relay protocol on an inbound socket: the relay connects to the port and writes one byte (1) when connected, then
 * pipes; it closes the socket when nothing listens. So a TCP probe is "connect + read one byte".
 */
const RELAY = `
const net = require('node:net');
const cfg = JSON.parse(process.argv[1]);
let pending = cfg.ports.length + cfg.hostPorts.length;
const up = () => { if (--pending === 0) process.stdout.write('ready\\n'); };
if (pending === 0) process.stdout.write('ready\\n');
// The pod's network lives as long as this process: it stays up even when the pod has no ports.
setInterval(() => undefined, 1 << 30);
const pipe = (a, b) => { a.pipe(b); b.pipe(a); a.on('error', () => b.destroy()); b.on('error', () => a.destroy()); a.on('close', () => b.destroy()); b.on('close', () => a.destroy()); };
for (const p of cfg.ports) {
  net.createServer((c) => {
    c.on('error', () => undefined);
    const u = net.connect(p, cfg.podIP);
    u.once('error', () => c.destroy());
    u.once('connect', () => { c.write(Buffer.from([1])); pipe(c, u); });
  }).listen(cfg.sockDir + '/in-' + p + '.sock', up);
}
for (const h of cfg.hostPorts) {
  net.createServer((c) => {
    c.on('error', () => undefined);
    const u = net.connect(cfg.sockDir + '/out-' + h + '.sock');
    u.once('error', () => c.destroy());
    u.once('connect', () => pipe(c, u));
  }).listen(h, '127.0.0.1', up);
}
`;

export class PodNetwork {
  private readonly servers: net.Server[] = [];
  private relay: ChildProcess | undefined;

  private constructor(
    readonly podIP: string,
    private readonly sockDir: string,
  ) {}

  /** `/proc/<relay pid>/ns/net`: what containers join. */
  get netns(): string {
    return `/proc/${this.relay!.pid}/ns/net`;
  }

  static async start(opts: { podIP: string; ports: number[]; hostPorts: number[]; sockDir: string }): Promise<PodNetwork> {
    fs.mkdirSync(opts.sockDir, { recursive: true });
    const netw = new PodNetwork(opts.podIP, opts.sockDir);
    const config = JSON.stringify({ podIP: opts.podIP, ports: opts.ports, hostPorts: opts.hostPorts, sockDir: opts.sockDir });
    const relay = spawn('unshare', ['--net', '--', '/bin/sh', '-c', 'ip link set lo up && exec "$0" -e "$1" "$2"', process.execPath, RELAY, config], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    netw.relay = relay;
    await new Promise<void>((resolve, reject) => {
      const rl = createInterface({ input: relay.stdout! });
      rl.once('line', () => resolve());
      relay.once('exit', (code) => reject(new Error(`the pod network relay exited with ${code}`)));
    });
    for (const h of opts.hostPorts) {
      netw.listen(net.createServer((c) => relayTo(c, net.connect(h, '127.0.0.1'), false)), path.join(opts.sockDir, `out-${h}.sock`));
    }
    for (const p of opts.ports) {
      netw.listen(net.createServer((c) => relayTo(c, net.connect(path.join(opts.sockDir, `in-${p}.sock`)), true)), { port: p, host: opts.podIP });
    }
    await Promise.all(netw.servers.map((s) => new Promise<void>((resolve, reject) => (s.listening ? resolve() : (s.once('listening', resolve), s.once('error', reject))))));
    return netw;
  }

  /** TCP probe: is something listening on `port` inside the pod? */
  probeTcp(port: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const s = net.connect(path.join(this.sockDir, `in-${port}.sock`));
      const done = (ok: boolean) => {
        clearTimeout(timer);
        s.destroy();
        resolve(ok);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      s.once('data', () => done(true));
      s.once('error', () => done(false));
      s.once('close', () => done(false));
    });
  }

  close(): void {
    for (const s of this.servers) s.close();
    this.relay?.kill('SIGKILL');
    fs.rmSync(this.sockDir, { recursive: true, force: true });
  }

  private listen(server: net.Server, where: string | { port: number; host: string }): void {
    server.on('error', () => undefined);
    if (typeof where === 'string') server.listen(where);
    else server.listen(where.port, where.host);
    this.servers.push(server);
  }
}

/** Pipes a client to the pod; with `handshake`, waits for the relay's "connected" byte first. */
function relayTo(client: net.Socket, upstream: net.Socket, handshake: boolean): void {
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  upstream.on('close', () => client.destroy());
  client.on('close', () => upstream.destroy());
  const pipe = () => {
    client.pipe(upstream);
    upstream.pipe(client);
  };
  if (!handshake) {
    pipe();
    return;
  }
  client.pause();
  upstream.once('readable', function first() {
    const byte = upstream.read(1) as Buffer | null;
    if (!byte) {
      upstream.once('readable', first);
      return;
    }
    client.resume();
    pipe();
  });
}
