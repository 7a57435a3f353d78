// The chart with run.baseModel a Llama folder: the coordinator's arguments, parsed with its own flag
// table, name the folder and no MPT module names, so LoRA targets come from the family the
// coordinator reads in config.json (PEFT's llama default). The chart's default leaves the targets to
// the family, so the same values train MPT's [Wqkv] and Llama's [q_proj, v_proj]; both resolved on
// real config.json fixtures (the GQA llama3 Llama, the h12 MPT), whose names PEFT's own mapping gives.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loraTargets, targetModulesOf } from '../../src/checkpoint/lora-targets.ts';
import { coordinatorFlags } from '../../src/cli/coordinator.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import { parseModelConfig } from '../../src/families/registry.ts';
import { expandedArgs, find, type JobSpec, render, root } from './chart.ts';

const configOf = (dir: string) => {
  const path = join(root, 'test/fixtures', dir, 'config.json');
  return parseModelConfig(JSON.parse(readFileSync(path, 'utf8')), path);
};
const LLAMA = configOf('llama/gqa-tied-llama3');
const MPT = configOf('mpt/h12-wqkv');
const lora = { r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: null };
// Names only MPT's Linears have (up_proj and down_proj are both families').
const MPT_ONLY = /Wqkv|out_proj/;

function coordinatorArgs(opts: { valuesFiles?: string[]; set?: string[] }) {
  const objs = render(opts);
  const job = find(objs, 'Job', 'demo-lora-mpt-coordinator').spec as unknown as JobSpec;
  return {
    objs,
    flags: parseFlags(coordinatorFlags, expandedArgs(job.template.spec.containers[0]!, objs).slice(1)),
  };
}

describe('Helm chart: run.baseModel a Llama folder', () => {
  it("gives the coordinator the folder and PEFT's llama targets (values/llama.yaml)", () => {
    const c = coordinatorArgs({ valuesFiles: ['llama.yaml'] }).flags;
    assert.equal(c.base_model, '/workspace/models/Meta-Llama-3-8B');
    assert.equal(c.load_8bit, true);
    assert.equal(c.lora_target_modules, undefined);
    assert.deepEqual(targetModulesOf(LLAMA, lora), ['q_proj', 'v_proj']);
    assert.equal(loraTargets(LLAMA, lora).length, 2 * LLAMA.nLayers);
  });

  it('renders no MPT module name when only run.baseModel names a Llama', () => {
    const { objs, flags } = coordinatorArgs({ set: ['run.baseModel=/workspace/models/Meta-Llama-3-8B'] });
    assert.equal(flags.base_model, '/workspace/models/Meta-Llama-3-8B');
    assert.equal(flags.lora_target_modules, undefined);
    const text = JSON.stringify(objs);
    assert.doesNotMatch(text, MPT_ONLY);
    assert.deepEqual(
      loraTargets(LLAMA, lora)
        .map((t) => t.module)
        .sort(),
      [...Array<string>(LLAMA.nLayers).fill('q_proj'), ...Array<string>(LLAMA.nLayers).fill('v_proj')],
    );
    // The chart's former default, [Wqkv], is refused for a Llama by name.
    assert.throws(() => loraTargets(LLAMA, { ...lora, targetModules: ['Wqkv'] }), /Wqkv/);
  });

  it("keeps MPT's default run on [Wqkv] with the same values", () => {
    const { flags } = coordinatorArgs({});
    assert.equal(flags.base_model, '/workspace/models/mpt-7b-instruct');
    assert.equal(flags.lora_target_modules, undefined);
    assert.deepEqual(targetModulesOf(MPT, lora), ['Wqkv']);
    assert.equal(loraTargets(MPT, lora).length, MPT.nLayers);
  });
});
