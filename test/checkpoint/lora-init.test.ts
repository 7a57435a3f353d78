// PEFT's init_lora_weights against PEFT 0.21 itself (test/fixtures/lora-init, made by
// tools/reference/make_init_fixtures.py): the adapter_config.json a new adapter gets, the
// distribution of the first A and B, and DoRA's starting magnitude when B does not start at zero.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { initLoraWeights } from '../../src/checkpoint/lora-init.ts';
import type { InitLoraWeights } from '../../src/checkpoint/lora-spec.ts';
import { loraTargets } from '../../src/checkpoint/lora-targets.ts';
import { rowNorms } from '../../src/checkpoint/lora-variants/dora.ts';
import { DORA } from '../../src/checkpoint/lora-variants/index.ts';
import { initialVariantTensors } from '../../src/checkpoint/lora-variants/initial-tensors.ts';
import { loraConfigJson, newLoraConfig, parseLoraConfig } from '../../src/checkpoint/peft-adapter.ts';
import { openCheckpoint } from '../../src/families/checkpoint.ts';
import { parseMptConfig } from '../../src/families/mpt/config.ts';
import { readSafetensorsFile } from '../support/safetensors-file.ts';

const INIT = fileURLToPath(new URL('../fixtures/lora-init/', import.meta.url));
const BASE = 'test/fixtures/mpt/h12-wqkv';
const MODES: ReadonlyArray<readonly [string, InitLoraWeights]> = [
  ['true', true],
  ['false', false],
  ['gaussian', 'gaussian'],
];
const text = (p: string) => readFileSync(p, 'utf8');

interface Stats {
  readonly n: number;
  readonly mean: number;
  readonly std: number;
  readonly min: number;
  readonly max: number;
}
type Theory =
  | { readonly dist: 'uniform'; readonly bound: number }
  | { readonly dist: 'normal'; readonly std: number }
  | { readonly dist: 'zero' };
interface PeftStats {
  readonly r: number;
  readonly lora_alpha: number;
  readonly target_modules: string[];
  readonly modes: Record<string, Record<string, { peft: Stats; theory: Theory }>>;
}

function statsOf(xs: readonly Float32Array[]): Stats {
  let n = 0;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of xs) {
    for (const v of x) {
      n++;
      sum += v;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
  }
  const mean = sum / n;
  let sq = 0;
  for (const x of xs) for (const v of x) sq += (v - mean) ** 2;
  return { n, mean, std: Math.sqrt(sq / n), min, max };
}

/** Checks a sample against its distribution; `where` names it in failures. Tolerances are about
 * 5 standard errors for n >= 8192 entries. */
function assertDrawnFrom(s: Stats, t: Theory, where: string): void {
  if (t.dist === 'zero') {
    assert.deepEqual([s.min, s.max], [0, 0], `${where}: every entry 0`);
    return;
  }
  const sigma = t.dist === 'uniform' ? t.bound / Math.sqrt(3) : t.std;
  assert.ok(Math.abs(s.mean) < (5 * sigma) / Math.sqrt(s.n), `${where}: mean ${s.mean}, σ ${sigma}`);
  assert.ok(Math.abs(s.std / sigma - 1) < 0.025, `${where}: std ${s.std}, expected ${sigma}`);
  if (t.dist === 'uniform') {
    assert.ok(s.min >= -t.bound && s.max <= t.bound, `${where}: [${s.min}, ${s.max}] inside ±${t.bound}`);
    assert.ok(
      s.max > 0.99 * t.bound && s.min < -0.99 * t.bound,
      `${where}: [${s.min}, ${s.max}] fills ±${t.bound}`,
    );
  } else {
    // A normal sample of 8192 has ~22 entries past 3σ and none past 6σ.
    assert.ok(s.max > 3 * sigma && s.min < -3 * sigma, `${where}: tails [${s.min}, ${s.max}], σ ${sigma}`);
    assert.ok(s.max < 6 * sigma && s.min > -6 * sigma, `${where}: tails [${s.min}, ${s.max}], σ ${sigma}`);
  }
}

describe("init_lora_weights, as PEFT 0.21's", () => {
  for (const [name, mode] of MODES) {
    it(`${name}: a new adapter's adapter_config.json is PEFT's byte for byte, and reads back`, () => {
      const peft = text(join(INIT, name, 'adapter_config.json'));
      const lora = { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv'], initLoraWeights: mode };
      assert.equal(loraConfigJson(newLoraConfig(lora, BASE)), peft);
      assert.equal(parseLoraConfig(JSON.parse(peft), name).lora.initLoraWeights, mode);
    });
  }

  it('false with DoRA: adapter_config.json is PEFT’s byte for byte', () => {
    const peft = text(join(INIT, 'dora-false', 'adapter_config.json'));
    const lora = { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv'], useDora: true };
    assert.equal(loraConfigJson(newLoraConfig({ ...lora, initLoraWeights: false }, BASE)), peft);
  });

  const stats = JSON.parse(text(join(INIT, 'stats', 'stats.json'))) as PeftStats;
  const config = parseMptConfig(JSON.parse(text(join(INIT, 'stats', 'config.json'))), 'stats/config.json');
  const spec = {
    r: stats.r,
    loraAlpha: stats.lora_alpha,
    loraDropout: 0,
    targetModules: stats.target_modules,
  };
  const targets = loraTargets(config, spec);
  for (const [name, mode] of MODES) {
    it(`${name}: A and B start as PEFT draws them (d_model 256, r 16, every Linear)`, () => {
      const w = initLoraWeights(targets, { ...spec, initLoraWeights: mode }, 42);
      for (const [group, { peft, theory }] of Object.entries(stats.modes[name]!)) {
        const [kind, module] = group.split(':') as [string, string];
        const mine = statsOf(
          targets.filter((t) => t.module === module).map((t) => w.get(kind === 'A' ? t.aName : t.bName)!),
        );
        assert.equal(mine.n, peft.n, group);
        assertDrawnFrom(peft, theory, `PEFT ${name} ${group}`); // the fixture states what PEFT does
        assertDrawnFrom(mine, theory, `lora-mpt ${name} ${group}`);
      }
    });
  }

  it('refuses an init_lora_weights it does not implement, naming the field', () => {
    const peft = JSON.parse(text(join(INIT, 'true', 'adapter_config.json')));
    for (const bad of ['pissa', 'olora', 1, null]) {
      assert.throws(
        () => parseLoraConfig({ ...peft, init_lora_weights: bad }, 'a.json'),
        new RegExp(`a\\.json: init_lora_weights ${JSON.stringify(bad)}: this initialisation`),
      );
    }
  });

  it("with DoRA and B not zero (init false), the magnitude starts at PEFT's ‖W + s·B·A‖", async () => {
    const ckpt = await openCheckpoint(fileURLToPath(new URL(`../../${BASE}`, import.meta.url)));
    const adapter = await readSafetensorsFile(join(INIT, 'dora-false', 'adapter_model.safetensors'));
    const lora = { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv'], useDora: true };
    const ts = loraTargets(ckpt.config, lora);
    const weights = new Map(ts.flatMap((t) => [t.aName, t.bName].map((n) => [n, adapter.get(n)!])));
    const got = await initialVariantTensors(DORA, ts, (n) => ckpt.readTensor(n), { weights, scale: 2 });
    for (const t of ts) {
      const want = adapter.get(t.magnitudeName)!;
      const mine = got.get(t.magnitudeName)!;
      const w = await ckpt.readTensor(`${t.path}.weight`);
      const plain = rowNorms(w.data, t.outFeatures, t.inFeatures);
      let moved = 0;
      for (let i = 0; i < want.length; i++) {
        assert.ok(Math.abs(mine[i]! - want[i]!) <= 2e-6 * want[i]!, `${t.magnitudeName}[${i}]`);
        moved = Math.max(moved, Math.abs(want[i]! - plain[i]!) / want[i]!);
      }
      assert.ok(moved > 1e-3, `${t.magnitudeName}: B·A moves PEFT's magnitude off ‖W‖ (${moved})`);
    }
  });
});
