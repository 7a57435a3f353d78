// The LoRA trainable state as one flat Float32Array: every tensor is a view at a fixed offset, so
// gradients all-reduce, clip, checksum and AdamW-update as one vector and per-tensor access is free.

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

export interface ParamLayout {
  readonly specs: readonly ParamSpec[];
  /** Start of each tensor in the flat vector, by name. */
  readonly offsets: ReadonlyMap<string, number>;
  readonly size: number;
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Lays tensors out in the order given (callers pass a canonical, sorted order). */
export function paramLayout(specs: readonly ParamSpec[]): ParamLayout {
  const offsets = new Map<string, number>();
  let size = 0;
  for (const s of specs) {
    if (offsets.has(s.name)) throw new Error(`parameter "${s.name}" appears twice in the layout`);
    offsets.set(s.name, size);
    size += elements(s.shape);
  }
  return { specs, offsets, size };
}

/** A zero-copy view of one tensor inside a flat vector laid out by `layout`. */
export function viewOf(layout: ParamLayout, flat: Float32Array, name: string): Float32Array {
  const offset = layout.offsets.get(name);
  const spec = layout.specs.find((s) => s.name === name);
  if (offset === undefined || !spec) throw new Error(`no parameter "${name}" in the layout`);
  return flat.subarray(offset, offset + elements(spec.shape));
}

/** Copies named tensors into a new flat vector; every tensor of the layout must be present. */
export function flatten(layout: ParamLayout, tensors: ReadonlyMap<string, Float32Array>): Float32Array {
  const flat = new Float32Array(layout.size);
  for (const spec of layout.specs) {
    const t = tensors.get(spec.name);
    if (!t) throw new Error(`missing parameter "${spec.name}"`);
    const n = elements(spec.shape);
    if (t.length !== n) throw new Error(`parameter "${spec.name}" has ${t.length} values, expected ${n}`);
    flat.set(t, layout.offsets.get(spec.name)!);
  }
  return flat;
}

/** Views of every tensor of a flat vector, by name (no copies). */
export function unflatten(layout: ParamLayout, flat: Float32Array): Map<string, Float32Array> {
  if (flat.length !== layout.size)
    throw new Error(`flat vector has ${flat.length} values, layout ${layout.size}`);
  return new Map(layout.specs.map((s) => [s.name, viewOf(layout, flat, s.name)]));
}
