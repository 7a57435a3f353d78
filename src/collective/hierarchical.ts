// Hierarchical all-reduce (NCCL's and Horovod's two-level scheme on NATS): members on one node
// reduce-scatter through their node's server, the handlers of a lane (one per node) all-reduce
// their lane across nodes shard-owner style, then each handler all-gathers its lane inside its node.
// Topology (nodes, lanes, atoms, owners): hierarchical-topology.ts. Each worker connects to its
// node's NATS leaf server, joined to the cluster: a subject only node-local members subscribe to
// never leaves the node, and a cross-node message crosses each node's link once (docs/collective.md).
// Per node link and step about G out and 2(N-1)/N·G in, whatever the members per node.

import type { Algorithm, FinalBytes } from './algorithm.ts';
import { ChunkSet } from './chunk-set.ts';
import type { MissingPart } from './errors.ts';
import { addInto, sumInto } from './float-sum.ts';
import { FrameKind } from './frame.ts';
import { roundToBf16 } from './gradient-encoding.ts';
import { Topology } from './hierarchical-topology.ts';
import type { Round } from './round.ts';
import type { RoundSpec } from './round-spec.ts';
import { returnScratch, takeScratch } from './scratch.ts';
import { dataSubject } from './subjects.ts';

// Node-local phases carry the node index, so one node's traffic has no subscriber elsewhere.
const nodeRs = (node: number) => `hrs-n${node}`;
const nodeAg = (node: number) => `hag-n${node}`;
const CROSS_RS = 'hxrs';
const CROSS_AG = 'hxag';

export const hierarchical: Algorithm = {
  summary: 'per node link G out and 2(N-1)/N·G in, through a NATS leaf server per node',
  minMembers: 1,
  shards: (spec) => Topology.of(spec).atoms,
  member: (round, data, result) => new HierarchicalAllReduce(round, data, result),
  // Each atom's owner publishes its final bytes once on the cluster; that is the one copy.
  observer(spec: RoundSpec) {
    const t = Topology.of(spec);
    const subscriptions: FinalBytes[] = [];
    for (let s = 0; s < t.atoms; s++) {
      subscriptions.push({
        subject: dataSubject(spec.key, CROSS_AG, s, t.owner(s)),
        kind: FrameKind.crossGather,
        shard: s,
      });
    }
    return { subscriptions, sender: (shard) => spec.members[t.owner(shard)]! };
  },
};

class HierarchicalAllReduce {
  private readonly t: Topology;
  private readonly me: number;
  private readonly node: number;
  /** Members of our node, in member order (the local summation order). */
  private readonly local: readonly number[];
  /** Atoms of our lanes, and of those the ones we own. */
  private readonly mine: ReadonlySet<number>;
  private readonly owned: ReadonlySet<number>;
  /** Per atom of ours: each local member's part (ours is a view of `data`), by local index. */
  private readonly localParts = new Map<number, Float32Array[]>();
  private readonly localArrivals = new Map<number, Uint16Array>();
  /** Per local member: chunks of our atoms it sent (for the timeout's list). */
  private readonly localSets = new Map<number, ChunkSet>();
  /** Per atom we own: each node's partial, by node index. */
  private readonly crossParts = new Map<number, Float32Array[]>();
  private readonly crossArrivals = new Map<number, Uint16Array>();
  private readonly crossSets = new Map<number, ChunkSet>();
  /** Final bytes others send us: of our lanes' atoms we do not own, and of the other lanes. */
  private readonly crossFinals: ChunkSet;
  private readonly nodeFinals: ChunkSet;
  private finalChunks = 0;
  private readonly totalChunks: number;
  /** Whether owners publish final bytes to the cluster: other nodes or observers need them. */
  private readonly crossPublished: boolean;

  constructor(
    private readonly round: Round,
    private readonly data: Float32Array,
    readonly result: Float32Array,
  ) {
    const { layout, spec } = round;
    this.t = Topology.of(spec);
    const t = this.t;
    this.me = spec.selfIndex;
    this.crossPublished = t.nodes > 1 || spec.observers.length > 0;
    this.node = t.nodeOf[this.me]!;
    this.local = t.nodeMembers[this.node]!;
    const all = Array.from({ length: t.atoms }, (_, s) => s);
    const mine = t.atomsOf(this.me);
    this.mine = new Set(mine);
    this.owned = new Set(mine.filter((s) => t.owner(s) === this.me));
    this.totalChunks = all.reduce((n, s) => n + layout.chunkCount(s), 0);
    this.crossFinals = new ChunkSet(
      layout,
      mine.filter((s) => !this.owned.has(s)),
    );
    this.nodeFinals = new ChunkSet(
      layout,
      all.filter((s) => !this.mine.has(s)),
    );
    const scratch: Float32Array[] = [];
    round.onSettle(() => returnScratch(scratch));
    const take = (n: number) => {
      const b = takeScratch(n);
      scratch.push(b);
      return b;
    };
    for (const k of this.local) if (k !== this.me) this.localSets.set(k, new ChunkSet(layout, mine));
    for (const s of mine) {
      const { lo, hi } = layout.shard(s);
      this.localParts.set(
        s,
        this.local.map((k) => (k === this.me ? data.subarray(lo, hi) : take(hi - lo))),
      );
      this.localArrivals.set(s, new Uint16Array(layout.chunkCount(s)));
      if (!this.owned.has(s)) continue;
      this.crossParts.set(
        s,
        t.nodeNames.map(() => take(hi - lo)),
      );
      this.crossArrivals.set(s, new Uint16Array(layout.chunkCount(s)));
    }
    const owned = [...this.owned];
    t.nodeNames.forEach((_, j) => {
      if (j !== this.node) this.crossSets.set(j, new ChunkSet(layout, owned));
    });
    this.subscribeAll(mine, all);
    round.missingData = () => this.missing();
  }

  private subscribeAll(mine: readonly number[], all: readonly number[]): void {
    const { round, t } = this;
    const { key } = round.spec;
    for (const s of mine) {
      if (round.layout.chunkCount(s) === 0) continue;
      const lo = round.layout.shard(s).lo;
      if (this.local.length > 1) {
        round.subscribe(dataSubject(key, nodeRs(this.node), s, '*'), FrameKind.nodeReduce, (h, p) => {
          const set = this.localSets.get(h.from);
          if (h.shard !== s || !set?.add(s, h.chunk)) return;
          p.copyTo(this.localParts.get(s)![t.localIndex[h.from]!]!, h.offset - lo);
          if (++this.localArrivals.get(s)![h.chunk]! === this.local.length - 1) this.reduceLocal(s, h.chunk);
        });
      }
      if (this.owned.has(s) && t.nodes > 1) {
        round.subscribe(dataSubject(key, CROSS_RS, s, '*'), FrameKind.crossReduce, (h, p) => {
          const j = t.nodeOf[h.from];
          // Only the handler of this lane on another node sends us its partial.
          if (h.shard !== s || j === undefined || t.handlerFor(h.from, s) !== h.from) return;
          if (!this.crossSets.get(j)?.add(s, h.chunk)) return;
          p.copyTo(this.crossParts.get(s)![j]!, h.offset - lo);
          this.crossArrived(s, h.chunk);
        });
      } else if (!this.owned.has(s)) {
        const subject = dataSubject(key, CROSS_AG, s, t.owner(s));
        round.subscribe(subject, FrameKind.crossGather, (h, p) => {
          if (h.shard !== s || !this.crossFinals.add(s, h.chunk)) return;
          this.gathered(s, h.chunk, p.copyTo(this.result, h.offset));
        });
      }
    }
    for (const s of all) {
      if (this.mine.has(s) || round.layout.chunkCount(s) === 0) continue;
      // An atom owned on our node whose final bytes go to the cluster anyway: we hear that copy.
      const viaCross = this.crossPublished && t.ownerNode(s) === this.node;
      const subject = viaCross
        ? dataSubject(key, CROSS_AG, s, t.owner(s))
        : dataSubject(key, nodeAg(this.node), s, t.handlerFor(this.me, s));
      round.subscribe(subject, viaCross ? FrameKind.crossGather : FrameKind.nodeGather, (h, p) => {
        if (h.shard !== s || !this.nodeFinals.add(s, h.chunk)) return;
        p.copyTo(this.result, h.offset);
        this.finalChunks++;
        this.maybeComplete();
      });
    }
  }

  /**
   * After the barrier: our part of every atom of another lane to that lane's handler on our node,
   * chunk by chunk in `pipelineOrder`, so that every member sends the same atoms first and the
   * handlers can start across nodes before the node phase is over.
   */
  start(): void {
    const { layout, spec } = this.round;
    const order = this.pipelineOrder((s) => !this.mine.has(s));
    const chunks = Math.max(0, ...order.map((s) => layout.chunkCount(s)));
    for (let j = 0; j < chunks; j++) {
      for (const s of order) {
        if (j >= layout.chunkCount(s)) continue;
        const c = layout.chunk(s, j);
        const subject = dataSubject(spec.key, nodeRs(this.node), s, this.me);
        this.round.sendData(subject, FrameKind.nodeReduce, s, j, this.data.subarray(c.lo, c.hi));
      }
    }
    // Alone on our node: every chunk of our atoms is already reduced locally.
    if (this.local.length === 1) {
      const mine = this.pipelineOrder((s) => this.mine.has(s));
      for (const s of mine) for (let j = 0; j < layout.chunkCount(s); j++) this.reduceLocal(s, j);
    }
    this.maybeComplete();
  }

  /**
   * The atoms `keep` selects, owner node by owner node starting after ours (each node's handlers
   * send their first partials to a different node, so every node's inbound link is busy at once),
   * lanes rotated from our local index within a node (every handler gets work early).
   */
  private pipelineOrder(keep: (atom: number) => boolean): number[] {
    const { nodes, lanes } = this.t;
    const out: number[] = [];
    for (let p = 1; p <= nodes; p++) {
      const node = (this.node + p) % nodes;
      for (let q = 1; q <= lanes; q++) {
        const s = ((this.t.localIndex[this.me]! + q) % lanes) * nodes + node;
        if (keep(s)) out.push(s);
      }
    }
    return out;
  }

  // The node partial of one chunk, in local member order ((x0 + x1) + x2) + ..., each step rounded
  // to float32. The owner keeps it; another node's handler sends it to the owner.
  private reduceLocal(s: number, j: number): void {
    const { layout, spec } = this.round;
    const c = layout.chunk(s, j);
    const lo = c.lo - layout.shard(s).lo;
    const owned = this.owned.has(s);
    const nodeParts = this.crossParts.get(s);
    // A non-owner's partial goes out at once: `result` is scratch until the final bytes come.
    const out = owned
      ? nodeParts![this.node]!.subarray(lo, lo + c.hi - c.lo)
      : this.result.subarray(c.lo, c.hi);
    sumParts(out, this.localParts.get(s)!, lo);
    if (owned) this.crossArrived(s, j);
    else {
      const subject = dataSubject(spec.key, CROSS_RS, s, this.me);
      this.round.sendData(subject, FrameKind.crossReduce, s, j, out);
    }
  }

  private crossArrived(s: number, j: number): void {
    const arrivals = this.crossArrivals.get(s)!;
    if (++arrivals[j]! < this.t.nodes) return;
    // Every node's partial is in: the final bytes, in node order, published once to the cluster.
    const { layout, spec } = this.round;
    const c = layout.chunk(s, j);
    const lo = c.lo - layout.shard(s).lo;
    const out = this.result.subarray(c.lo, c.hi);
    sumParts(out, this.crossParts.get(s)!, lo);
    // We keep what the others decode: the same bytes everywhere, whatever the encoding.
    if (spec.encoding === 'bf16' && (this.crossPublished || this.local.length > 1)) roundToBf16(out);
    if (this.crossPublished) {
      this.round.sendData(dataSubject(spec.key, CROSS_AG, s, this.me), FrameKind.crossGather, s, j, out);
    }
    this.gathered(s, j, out, this.crossPublished);
  }

  /** Final bytes of a chunk of our lanes: to the rest of our node, unless they heard it already. */
  private gathered(s: number, j: number, out: Float32Array, heard = false): void {
    if (this.local.length > 1 && !heard) {
      const { key } = this.round.spec;
      this.round.sendData(dataSubject(key, nodeAg(this.node), s, this.me), FrameKind.nodeGather, s, j, out);
    }
    this.finalChunks++;
    this.maybeComplete();
  }

  private maybeComplete(): void {
    if (this.finalChunks === this.totalChunks) this.round.complete();
  }

  private missing(): MissingPart[] {
    const { members } = this.round.spec;
    const out: MissingPart[] = [];
    const add = (member: number, phase: MissingPart['phase'], set: ChunkSet) => {
      for (const [shard, chunks] of set.missing())
        out.push({ member: members[member]!, phase, shard, chunks });
    };
    for (const [k, set] of this.localSets) add(k, 'reduce-scatter', set);
    for (const [j, set] of this.crossSets) {
      for (const [shard, chunks] of set.missing()) {
        out.push({
          member: members[this.t.handler(j, this.t.laneOf(shard))]!,
          phase: 'reduce-scatter',
          shard,
          chunks,
        });
      }
    }
    for (const [shard, chunks] of this.crossFinals.missing()) {
      out.push({ member: members[this.t.owner(shard)]!, phase: 'gather', shard, chunks });
    }
    for (const [shard, chunks] of this.nodeFinals.missing()) {
      out.push({ member: members[this.t.handlerFor(this.me, shard)]!, phase: 'gather', shard, chunks });
    }
    return out;
  }
}

/** out = ((p0 + p1) + p2) + ... over parts[*][lo .. lo + out.length), each step rounded to float32. */
function sumParts(out: Float32Array, parts: readonly Float32Array[], lo: number): void {
  const len = out.length;
  const part = (k: number) => parts[k]!.subarray(lo, lo + len);
  if (parts.length === 1) {
    out.set(part(0));
    return;
  }
  // Every part was checked finite when it arrived (copyTo); the sums are not checked here.
  sumInto(out, part(0), part(1), false);
  for (let k = 2; k < parts.length; k++) addInto(out, part(k), false);
}
