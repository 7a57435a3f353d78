// A simulated multi-node cluster on one machine (needs root): one network namespace per node with
// its own NATS leaf server on the namespace's loopback, a hub namespace with the cluster server, and
// one veth pair per node whose two ends are shaped with tbf, so each node's link (not the CPUs) is
// the bottleneck and its interface counters are the node's cross-node bytes. Traffic goes only to
// loopback and to the addresses assigned here, inside namespaces made here; close() removes
// everything (processes, namespaces, their veths, config files), also after a failure.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NetnsOptions {
  readonly nodes: number;
  /** Rate of each link, each direction, in Mbit/s (tbf). */
  readonly mbit: number;
}

export interface LinkBytes {
  /** Bytes the node sent to the hub and received from it (its veth's counters, frames as sent). */
  readonly tx: number;
  readonly rx: number;
  /** Frames the node sent and received (the same counters'). */
  readonly txPackets: number;
  readonly rxPackets: number;
  /**
   * TCP payload bytes sent again across the link, each way (`ss`'s bytes_retrans of the sockets
   * that cross it: the node's to the hub, the hub's to the node). Namespaces use the host's
   * congestion control (BBR here), whose probing overshoots a tbf queue now and then on a loaded
   * machine, so a round may resend a few segments; these counts take that out of the payload.
   */
  readonly txRetrans: number;
  readonly rxRetrans: number;
}

/**
 * Bytes of one frame that are not TCP payload on these links: Ethernet (14), IPv4 (20) and TCP with
 * the timestamp option Linux sets on every segment of an established connection (32).
 */
export const FRAME_HEADER_BYTES = 66;

/**
 * TCP payload a link carried one way: its bytes less each frame's headers. Pure ACKs carry none, so
 * this is the NATS protocol bytes (plus any retransmitted segment), however the kernel cut them.
 */
export const payloadBytes = (l: LinkBytes, way: 'tx' | 'rx'): number =>
  way === 'tx' ? l.tx - FRAME_HEADER_BYTES * l.txPackets : l.rx - FRAME_HEADER_BYTES * l.rxPackets;

/** TCP payload sent across the link once, one way: the payload less what was retransmitted. */
export const sentOnce = (l: LinkBytes, way: 'tx' | 'rx'): number =>
  payloadBytes(l, way) - (way === 'tx' ? l.txRetrans : l.rxRetrans);

/** Sum of bytes_retrans over `ss -tin` sockets in `ns` whose peer is `peer`. */
function retransmittedTo(ns: string, peer: string): number {
  const out = execFileSync('ip', ['netns', 'exec', ns, 'ss', '-tinH', 'dst', peer], { encoding: 'utf8' });
  let total = 0;
  for (const m of out.matchAll(/\bbytes_retrans:(\d+)/g)) total += Number(m[1]);
  return total;
}

const CLIENT_PORT = 4222;
const LEAF_PORT = 7422;

function ip(args: readonly string[], cmd = 'ip'): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${(err.stderr ?? err.message).trim()}): the simulated network needs root ` +
        'and network namespaces (iproute2, veth, tbf)',
    );
  }
}

export class SimulatedNetwork {
  /** Namespace of each node; the hub's. */
  readonly nodeNs: readonly string[];
  readonly hubNs: string;
  private readonly made: string[] = [];
  private readonly servers: ChildProcess[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'lora-mpt-netns-'));

  private constructor(readonly o: NetnsOptions) {
    // Short, unique per process: names leave no doubt whose they are if a run is killed.
    const tag = `lmh${process.pid}`;
    this.hubNs = `${tag}-hub`;
    this.nodeNs = Array.from({ length: o.nodes }, (_, i) => `${tag}-n${i}`);
  }

  /** The hub's address on node `i`'s link, as the node sees it. */
  hubAddress(i: number): string {
    return `10.77.${i}.1`;
  }

  /** Node `i`'s own address on its link. */
  nodeAddress(i: number): string {
    return `10.77.${i}.2`;
  }

  /** Client URL of the cluster server from node `i` (through its link). */
  hubUrl(i: number): string {
    return `nats://${this.hubAddress(i)}:${CLIENT_PORT}`;
  }

  /** Client URL of node `i`'s leaf server, inside its namespace. */
  leafUrl(_i: number): string {
    return `nats://127.0.0.1:${CLIENT_PORT}`;
  }

  static async create(o: NetnsOptions): Promise<SimulatedNetwork> {
    const net = new SimulatedNetwork(o);
    try {
      await net.build();
      return net;
    } catch (e) {
      net.close();
      throw e;
    }
  }

  private async build(): Promise<void> {
    const { mbit } = this.o;
    for (const ns of [this.hubNs, ...this.nodeNs]) {
      ip(['netns', 'add', ns]);
      this.made.push(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // tbf: the rate, a burst of a few full-size segments, a queue of at most ~50 ms at the rate.
    const shape = (ns: string, dev: string) =>
      ip(
        [
          '-n',
          ns,
          'qdisc',
          'add',
          'dev',
          dev,
          'root',
          'tbf',
          'rate',
          `${mbit}mbit`,
          'burst',
          '64kb',
          'latency',
          '50ms',
        ],
        'tc',
      );
    this.nodeNs.forEach((ns, i) => {
      ip(['-n', this.hubNs, 'link', 'add', `down${i}`, 'type', 'veth', 'peer', 'name', 'up0', 'netns', ns]);
      ip(['-n', this.hubNs, 'addr', 'add', `${this.hubAddress(i)}/30`, 'dev', `down${i}`]);
      ip(['-n', ns, 'addr', 'add', `${this.nodeAddress(i)}/30`, 'dev', 'up0']);
      ip(['-n', this.hubNs, 'link', 'set', `down${i}`, 'up']);
      ip(['-n', ns, 'link', 'set', 'up0', 'up']);
      shape(this.hubNs, `down${i}`);
      shape(ns, 'up0');
    });
    const hubConf = this.conf('hub', [
      `listen: 0.0.0.0:${CLIENT_PORT}`,
      `leafnodes { listen: 0.0.0.0:${LEAF_PORT} }`,
    ]);
    await this.server(this.hubNs, hubConf, /Server is ready/);
    await Promise.all(
      this.nodeNs.map((ns, i) => {
        const conf = this.conf(`leaf${i}`, [
          `listen: 127.0.0.1:${CLIENT_PORT}`,
          `leafnodes { remotes: [ { url: "nats-leaf://${this.hubAddress(i)}:${LEAF_PORT}" } ] }`,
        ]);
        return this.server(ns, conf, /Leafnode connection created/);
      }),
    );
  }

  private conf(name: string, lines: readonly string[]): string {
    const path = join(this.dir, `${name}.conf`);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  }

  /** Starts nats-server in `ns`; resolves when its log says `ready`. */
  private server(ns: string, conf: string, ready: RegExp): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', ns, 'nats-server', '-c', conf], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.servers.push(child);
    return new Promise((resolve, reject) => {
      let log = '';
      const timer = setTimeout(
        () => reject(new Error(`nats-server in ${ns} not ready after 20 s:\n${log}`)),
        20_000,
      );
      child.stderr?.on('data', (c: Buffer) => {
        log = (log + c.toString()).slice(-4000);
        if (ready.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server in ${ns} exited with ${code}:\n${log}`));
      });
    });
  }

  /** Node `i`'s link counters now. */
  linkBytes(i: number): LinkBytes {
    const names = ['tx_bytes', 'rx_bytes', 'tx_packets', 'rx_packets'];
    const [tx, rx, txPackets, rxPackets] = execFileSync(
      'ip',
      ['netns', 'exec', this.nodeNs[i]!, 'cat', ...names.map((n) => `/sys/class/net/up0/statistics/${n}`)],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n')
      .map(Number) as [number, number, number, number];
    const txRetrans = retransmittedTo(this.nodeNs[i]!, this.hubAddress(i));
    const rxRetrans = retransmittedTo(this.hubNs, this.nodeAddress(i));
    return { tx, rx, txPackets, rxPackets, txRetrans, rxRetrans };
  }

  /**
   * Every node's link counters (tx: bytes the node sent, rx: received), read with no exec from the
   * hub's side of each veth through the hub server's /proc/PID/net/dev (`ip netns exec` execs in
   * place, so that process sits in the hub's namespace): cheap enough to sample every few ms.
   */
  sampleLinks(): { tx: number; rx: number }[] {
    const pid = this.servers[0]?.pid;
    if (pid === undefined) throw new Error('the hub nats-server is not running: no link counters');
    const rows = new Map<string, number[]>();
    for (const line of readFileSync(`/proc/${pid}/net/dev`, 'utf8').split('\n')) {
      const m = /^\s*([^:\s]+):(.*)$/.exec(line);
      if (m) rows.set(m[1]!, m[2]!.trim().split(/\s+/).map(Number));
    }
    return this.nodeNs.map((_, i) => {
      const f = rows.get(`down${i}`);
      if (!f) throw new Error(`/proc/${pid}/net/dev has no down${i}: the simulated network is gone`);
      // The hub's receive is the node's transmit: fields 0 (rx bytes) and 8 (tx bytes).
      return { tx: f[0]!, rx: f[8]! };
    });
  }

  /** Spawns `cmd args` inside node `i`'s namespace. */
  spawnIn(i: number, cmd: string, args: readonly string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.nodeNs[i]!, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  }

  /** Stops the servers and deletes the namespaces (their veths go with them) and the config files. */
  close(): void {
    for (const s of this.servers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    for (const ns of this.made.splice(0)) {
      try {
        ip(['netns', 'del', ns]);
      } catch {
        // Already gone: nothing to remove.
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
