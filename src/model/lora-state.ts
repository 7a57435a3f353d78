// A model's LoRA adapter on the device, whatever the family: configure(settings) once → the targets
// (PEFT names and shapes); then before every step setWeights(map) with the trainer's current host
// Float32Arrays (PEFT names, A [r, in], B [out, r]; with DoRA also the magnitudes [out]), copied to
// the device and never modified. DoRA's per-row norm ‖W + s·B·A‖ is computed there once per step
// (src/model/dora-norm.ts).
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from '../checkpoint/architecture.ts';
import { type LoraSettings, loraScaling } from '../checkpoint/lora-spec.ts';
import { type LoraTarget, loraTargets } from '../checkpoint/lora-targets.ts';
import { doraFactors } from './dora-norm.ts';
import { transposeHost } from './host-transpose.ts';
import type { LoraFactors } from './linear.ts';
import type { LinearWeightSource } from './linear-weights.ts';

/** This step's LoRA factors of one block, by Linear name (absent: no LoRA there). */
export type BlockLora = Readonly<Partial<Record<string, LoraFactors>>>;

export class LoraState {
  private loraSettings: LoraSettings | null = null;
  private loraTargets: readonly LoraTarget[] = [];
  private factors: Map<number, Partial<Record<string, LoraFactors>>> = new Map();

  constructor(
    private readonly config: ModelConfig,
    /** The frozen weight of Linear `module` in block `layer` (DoRA's norm reads it). */
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
      let magnitude: Float32Array | null = null;
      if (s.useDora) {
        magnitude = weights.get(t.magnitudeName) ?? null;
        if (magnitude === null) throw new Error(`LoRA weights: missing ${t.magnitudeName} (use_dora)`);
        if (magnitude.length !== t.outFeatures)
          throw new Error(`LoRA weights: ${t.magnitudeName} must have ${t.outFeatures} values`);
      }
      const layer = next.get(t.layer) ?? {};
      const f = {
        a: tf.tensor2d(a, [s.r, t.inFeatures]),
        at: tf.tensor2d(transposeHost(a, s.r, t.inFeatures), [t.inFeatures, s.r]),
        b: tf.tensor2d(b, [t.outFeatures, s.r]),
        bt: tf.tensor2d(transposeHost(b, t.outFeatures, s.r), [s.r, t.outFeatures]),
        scale,
      };
      layer[t.module] = {
        ...f,
        dora:
          magnitude === null
            ? null
            : doraFactors(this.baseLinear(t.layer, t.module), f.a, f.b, scale, magnitude),
      };
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
        if (f === undefined) continue;
        tf.dispose([f.a, f.at, f.b, f.bt]);
        if (f.dora !== null) tf.dispose([f.dora.c, f.dora.invNorm]);
      }
    }
    this.factors = new Map();
  }

  dispose(): void {
    this.disposeFactors();
  }
}
