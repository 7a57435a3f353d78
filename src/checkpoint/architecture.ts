// What every model family's config.json says, in one shape the lower floors read without knowing the
// family: the common sizes, and the architecture (the block's Linears LoRA may wrap, module paths,
// weight names and shapes, what one block keeps for its backward). A family (src/families/<name>)
// parses its config.json into a ModelConfig; pure data and arithmetic, no TensorFlow.js.

/** One Linear of a block, y = x·Wᵀ with W [outFeatures, inFeatures]. */
export interface LinearSpec {
  /** The module's own name, as PEFT's target_modules match it (e.g. `Wqkv`, `q_proj`). */
  readonly name: string;
  readonly inFeatures: number;
  readonly outFeatures: number;
}

/** A family's architecture, as far as code outside the family needs it. */
export interface Architecture {
  /** The family's name in messages (e.g. `MPT`). */
  readonly displayName: string;
  /** PEFT's default target_modules for this model_type (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING),
   * e.g. [Wqkv] for MPT, [q_proj, v_proj] for Llama. */
  readonly peftDefaultTargets: readonly string[];
  /** The name of the module list that numbers the blocks (PEFT's layers_pattern: MPT `blocks`,
   * Llama `layers`). */
  readonly layersPattern: string;
  /** One block's Linears that LoRA may wrap, in forward order (the first is the block's lowest). */
  readonly linears: readonly LinearSpec[];
  /** The block's Linears grouped by the tensor they read, bottom-up; the first group reads the block's
   * (normed) input and feeds the attention: MPT [[Wqkv], [out_proj], [up_proj], [down_proj]], Llama
   * [[q_proj, k_proj, v_proj], [o_proj], [gate_proj, up_proj], [down_proj]]. The backward stops at
   * the lowest group with LoRA, which gets no input gradient (src/model/flops.ts counts by it). */
  readonly inputGroups: readonly (readonly string[])[];
  /** The module path of a Linear in the HF model, e.g. `transformer.blocks.0.attn.Wqkv`. */
  modulePath(layer: number, linear: string): string;
  /** Every weight tensor a checkpoint of this config holds (HF state-dict names), with its shape. */
  weightShapes(): ReadonlyMap<string, readonly number[]>;
  /** Float32 values of the normalisation weights of the whole model. */
  readonly normValues: number;
  /** Float32 values of the host-held embedding tables (token and, where learned, position). */
  readonly embeddingValues: number;
  /** Float32 values one block's forward keeps for its backward besides its Linears' inputs. */
  blockSavedValues(rows: number, seqLen: number): number;
  /** Peak float32 values alive inside one block's forward or backward beyond what is saved. */
  blockWorkingValues(rows: number, seqLen: number): number;
  /** Float32 values of the attention bias of one forward of `rows` x `seqLen`. */
  attentionBiasValues(rows: number, seqLen: number): number;
}

/** The config.json fields every family has (a family's own config extends this). */
export interface ModelConfig {
  /** config.json's `model_type`: the registry's key (src/families/registry.ts). */
  readonly modelType: string;
  /** Hidden width (MPT d_model, Llama hidden_size). */
  readonly dModel: number;
  readonly nHeads: number;
  readonly nLayers: number;
  readonly maxSeqLen: number;
  readonly vocabSize: number;
  /** Multiplier on the logits; null = none. */
  readonly logitScale: number | null;
  readonly torchDtype: string | null;
  readonly tokenizerName: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  /** The parsed JSON as read, for fields the types do not model. */
  readonly raw: Readonly<Record<string, unknown>>;
  readonly arch: Architecture;
}

/** The Linear called `name` in `config`'s blocks; throws naming it and the known ones. */
export function linearOf(config: ModelConfig, name: string): LinearSpec {
  const spec = config.arch.linears.find((l) => l.name === name);
  if (spec === undefined) {
    const known = config.arch.linears.map((l) => l.name).join(', ');
    throw new Error(`${config.arch.displayName} has no Linear "${name}" in its blocks; it has ${known}`);
  }
  return spec;
}
