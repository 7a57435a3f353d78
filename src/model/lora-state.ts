// A model's LoRA adapter on the device, whatever the family: configure(settings) once → the targets
// (PEFT names and shapes); then before every step setWeights(map) with the trainer's current host
// Float32Arrays (PEFT names, A [r, in], B [out, r], and the run's LoRA variant's own tensors, e.g.
// DoRA's magnitudes [out]), copied to the device and never modified. The variant prepares its
// per-step state there (DoRA's row norms ‖W + s·B·A‖, src/checkpoint/lora-variants/dora.ts).
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../checkpoint/architecture.ts';
import { type LoraSettings, loraScaling } from '../checkpoint/lora-spec.ts';
import { type LoraTarget, loraTargets } from '../checkpoint/lora-targets.ts';
import { loraVariantOf } from '../checkpoint/lora-variants/index.ts';
import { transposeHost } from './host-transpose.ts';
import { frozenRows, type LoraFactors } from './linear.ts';
import type { LinearWeightSource } from './linear-weights.ts';

/** This step's LoRA factors of one block, by Linear name (absent: no LoRA there). */
export type BlockLora = Readonly<Partial<Record<string, LoraFactors>>>;

export class LoraState {
  private loraSettings: LoraSettings | null = null;
  private loraTargets: readonly LoraTarget[] = [];
  private factors: Map<number, Partial<Record<string, LoraFactors>>> = new Map();

  constructor(
    private readonly config: ModelConfig,
    /** The frozen weight of Linear `module` in block `layer` (a variant's per-step state may read it:
     * DoRA's norm). */
    private readonly baseLinear: (layer: number, module: string) => LinearWeightSource,
  ) {}

  get settings(): LoraSettings | null {
    return this.loraSettings;
  }

  get targets(): readonly LoraTarget[] {
    return this.loraTargets;
  }

  get hasWeights(): boolean {
    return this.factors.size > 0;
  }

  /** Chooses the LoRA modules (PEFT matching) and drops any previous adapter. */
  configure(settings: LoraSettings): readonly LoraTarget[] {
    const targets = loraTargets(this.config, settings);
    this.disposeFactors();
    this.loraSettings = settings;
    this.loraTargets = targets;
    return targets;
  }

  /** Uploads the current A and B of every target (PEFT saved names); replaces the previous ones. */
  setWeights(weights: ReadonlyMap<string, Float32Array>): void {
    const s = this.loraSettings;
    if (s === null) throw new Error('setLoraWeights: call configureLora first');
    const scale = loraScaling(s);
    const variant = loraVariantOf(s);
    const next = new Map<number, Partial<Record<string, LoraFactors>>>();
    for (const t of this.loraTargets) {
      const a = weights.get(t.aName);
      const b = weights.get(t.bName);
      if (a === undefined || b === undefined) {
        throw new Error(`LoRA weights: missing ${a === undefined ? t.aName : t.bName}`);
      }
      if (a.length !== s.r * t.inFeatures || b.length !== t.outFeatures * s.r) {
        throw new Error(
          `LoRA weights: ${t.aName} must have ${s.r}x${t.inFeatures} and ${t.bName} ${t.outFeatures}x${s.r} values`,
        );
      }
      const extras = variant.extraTensors(t).map((spec) => {
        const v = weights.get(spec.name);
        const size = spec.shape.reduce((n, x) => n * x, 1);
        if (v === undefined)
          throw new Error(`LoRA weights: missing ${spec.name}, which ${variant.name} trains`);
        if (v.length !== size) throw new Error(`LoRA weights: ${spec.name} must have ${size} values`);
        return v;
      });
      const layer = next.get(t.layer) ?? {};
      const pair = {
        a: tf.tensor2d(a, [s.r, t.inFeatures]),
        at: tf.tensor2d(transposeHost(a, s.r, t.inFeatures), [t.inFeatures, s.r]),
        b: tf.tensor2d(b, [t.outFeatures, s.r]),
        bt: tf.tensor2d(transposeHost(b, t.outFeatures, s.r), [s.r, t.outFeatures]),
        scale,
      };
      layer[t.module] = variant.prepare(tf, pair, extras, frozenRows(this.baseLinear(t.layer, t.module)));
      next.set(t.layer, layer);
    }
    this.disposeFactors();
    this.factors = next;
  }

  /** This step's LoRA factors of one block (empty without an adapter). Owned by this state. */
  block(layer: number): BlockLora {
    return this.factors.get(layer) ?? {};
  }

  private disposeFactors(): void {
    for (const layer of this.factors.values()) {
      for (const f of Object.values(layer)) {
        f?.dispose();
      }
    }
    this.factors = new Map();
  }

  dispose(): void {
    this.disposeFactors();
  }
}
