// The topology of a hierarchical round, derived on every participant from the same RoundSpec
// (members and their node names, which the coordinator's ReduceStart carries), so all agree on it
// without exchanging anything.
//
// Nodes are the distinct node names, sorted; a node's members keep member order. The vector is cut
// into lanes·nodes "atoms" (the round's layout shards), lanes = the most members any node has. Lane
// l is atoms l·N .. l·N+N-1; on node j it is handled by local member l mod m_j, so every lane has
// exactly one handler per node even when nodes hold different numbers of members. Atom l·N+i is
// owned by node i's handler of lane l: it sums the node partials of that atom across nodes.
import type { RoundSpec } from './round-spec.ts';

export class Topology {
  /** Distinct node names, sorted: node index j names nodeNames[j]. */
  readonly nodeNames: readonly string[];
  /** Member indices of each node, in member order. */
  readonly nodeMembers: readonly (readonly number[])[];
  /** Node index of each member. */
  readonly nodeOf: readonly number[];
  /** Index of each member within its node. */
  readonly localIndex: readonly number[];
  readonly lanes: number;

  constructor(nodes: readonly string[]) {
    this.nodeNames = [...new Set(nodes)].sort();
    const byName = new Map(this.nodeNames.map((name, j) => [name, j]));
    const nodeMembers: number[][] = this.nodeNames.map(() => []);
    const localIndex: number[] = [];
    this.nodeOf = nodes.map((name, m) => {
      const j = byName.get(name)!;
      localIndex.push(nodeMembers[j]!.length);
      nodeMembers[j]!.push(m);
      return j;
    });
    this.nodeMembers = nodeMembers;
    this.localIndex = localIndex;
    this.lanes = Math.max(...nodeMembers.map((ms) => ms.length));
  }

  static of(spec: RoundSpec): Topology {
    return new Topology(spec.nodes);
  }

  get nodes(): number {
    return this.nodeNames.length;
  }

  /** Shards of the round's layout. */
  get atoms(): number {
    return this.lanes * this.nodes;
  }

  laneOf(atom: number): number {
    return Math.floor(atom / this.nodes);
  }

  ownerNode(atom: number): number {
    return atom % this.nodes;
  }

  /** The member of node `node` that handles lane `lane`. */
  handler(node: number, lane: number): number {
    const ms = this.nodeMembers[node]!;
    return ms[lane % ms.length]!;
  }

  /** The member that sums `atom` across nodes and publishes its final bytes. */
  owner(atom: number): number {
    return this.handler(this.ownerNode(atom), this.laneOf(atom));
  }

  /** The member of `member`'s node that handles `atom`'s lane there. */
  handlerFor(member: number, atom: number): number {
    return this.handler(this.nodeOf[member]!, this.laneOf(atom));
  }

  /** Atoms whose lane `member` handles on its node, ascending. */
  atomsOf(member: number): number[] {
    const out: number[] = [];
    for (let s = 0; s < this.atoms; s++) if (this.handlerFor(member, s) === member) out.push(s);
    return out;
  }
}
