// A model family as the registry holds it: config.json's `model_type`, a pure parser (config and
// architecture: what the coordinator needs, no TensorFlow.js) and a lazy loader of its compute part
// (blocks, assembly, loading), so a process that never runs the model never loads TensorFlow.js.
import type { ModelConfig } from '../checkpoint/architecture.ts';
import type { LoadModel } from '../model/causal-lm.ts';

/** The part of a family that runs in TensorFlow.js. */
export interface FamilyCompute {
  readonly loadModel: LoadModel;
}

/** The sizes of a randomly initialised checkpoint (the demo's base model, the tests' tiny ones). */
export interface RandomCheckpointSizes {
  readonly dModel: number;
  readonly nHeads: number;
  readonly nLayers: number;
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  /** Standard deviation of the normal init of Linear and embedding weights (default 0.02). */
  readonly initStd?: number;
  readonly seed?: number;
}

export interface ModelFamily {
  /** config.json's `model_type` this family reads. */
  readonly modelType: string;
  /** PEFT's layers_pattern for this family: the module list its blocks are numbered in. */
  readonly layersPattern: string;
  /** Parses and validates config.json; `source` names the file in errors. */
  parseConfig(json: unknown, source: string): ModelConfig;
  /** The compute part, imported on first use (only a literal dynamic import of the family's
   * compute.ts; test/architecture/layers.test.ts checks no coordinator file calls it). */
  loadCompute(): Promise<FamilyCompute>;
  /** Published configs by name (config.json's JSON), for a model described but never loaded
   * (`--base_model synthetic:<name>`, src/families/synthetic-model.ts). */
  readonly namedConfigs: Readonly<Record<string, Record<string, unknown>>>;
  /** Writes a seeded random checkpoint of this family (config.json + model.safetensors) to `dir`. */
  writeRandomCheckpoint(dir: string, sizes: RandomCheckpointSizes): Promise<void>;
}
