// Reads a V8 heap snapshot (.heapsnapshot, as v8.writeHeapSnapshot writes it) into self bytes and
// object counts per kind of object — `type:name`, the name being the constructor for objects — so
// two snapshots of one process taken at different worker counts say what each added worker costs.
import { readFileSync } from 'node:fs';

export interface HeapKind {
  readonly bytes: number;
  readonly count: number;
}

interface RawSnapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: unknown[] } };
  readonly nodes: number[];
  readonly strings: string[];
}

/** Self bytes and count per `type:name` of every node of the snapshot in `file`. */
export function heapKinds(file: string): Map<string, HeapKind> {
  const raw = JSON.parse(readFileSync(file, 'utf8')) as RawSnapshot;
  const fields = raw.snapshot.meta.node_fields;
  const types = raw.snapshot.meta.node_types[0];
  if (!Array.isArray(types)) throw new Error(`${file}: no node type names in snapshot.meta.node_types`);
  const [t, n, s] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  if (t === undefined || n === undefined || s === undefined || Math.min(t, n, s) < 0)
    throw new Error(`${file}: snapshot.meta.node_fields lacks type, name or self_size`);
  const out = new Map<string, HeapKind>();
  const width = fields.length;
  for (let i = 0; i < raw.nodes.length; i += width) {
    const type = String(types[raw.nodes[i + t]!]);
    // Strings and code are named by their content: group them by type alone.
    const name =
      type === 'object' || type === 'native' || type === 'closure' ? raw.strings[raw.nodes[i + n]!] : '';
    const key = `${type}:${name}`;
    const k = out.get(key);
    const bytes = raw.nodes[i + s]!;
    out.set(key, { bytes: (k?.bytes ?? 0) + bytes, count: (k?.count ?? 0) + 1 });
  }
  return out;
}

/** The kinds that grew most from `a` (at `na` workers) to `b` (at `nb`), per added worker. */
export function growthPerWorker(
  a: ReadonlyMap<string, HeapKind>,
  b: ReadonlyMap<string, HeapKind>,
  na: number,
  nb: number,
  top: number,
): { kind: string; bytes: number; count: number }[] {
  const rows = [...b].map(([kind, v]) => ({
    kind,
    bytes: (v.bytes - (a.get(kind)?.bytes ?? 0)) / (nb - na),
    count: (v.count - (a.get(kind)?.count ?? 0)) / (nb - na),
  }));
  return rows.sort((x, y) => y.bytes - x.bytes).slice(0, top);
}
