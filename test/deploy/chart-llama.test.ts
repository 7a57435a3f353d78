// The chart with run.baseModel a Llama folder (values/llama.yaml): the coordinator's arguments,
// parsed with its own flag table, name the folder and no MPT module names, so LoRA targets come
// from the family the coordinator reads in config.json (PEFT's llama default). Checked on a real
// Llama config.json (the GQA llama3 fixture): the targets the run gets, and that the chart's default
// ([Wqkv]) would be refused for it, naming the module.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loraTargets, targetModulesOf } from '../../src/checkpoint/lora-targets.ts';
import { coordinatorFlags } from '../../src/cli/coordinator.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import { parseModelConfig } from '../../src/families/registry.ts';
import { expandedArgs, find, type JobSpec, render, root } from './chart.ts';

const LLAMA_CONFIG = join(root, 'test/fixtures/llama/gqa-tied-llama3/config.json');

function coordinatorArgs(valuesFiles: string[]) {
  const objs = render({ valuesFiles });
  const job = find(objs, 'Job', 'demo-lora-mpt-coordinator').spec as unknown as JobSpec;
  return parseFlags(coordinatorFlags, expandedArgs(job.template.spec.containers[0]!, objs).slice(1));
}

describe('Helm chart: run.baseModel a Llama folder', () => {
  it("gives the coordinator the folder and PEFT's llama targets, not the chart's MPT default", () => {
    const c = coordinatorArgs(['llama.yaml']);
    assert.equal(c.base_model, '/workspace/models/Meta-Llama-3-8B');
    assert.equal(c.load_8bit, true);
    assert.equal(c.lora_target_modules, undefined);
    const config = parseModelConfig(JSON.parse(readFileSync(LLAMA_CONFIG, 'utf8')), LLAMA_CONFIG);
    const lora = { r: 8, loraAlpha: 16, loraDropout: 0.05, targetModules: null };
    assert.deepEqual(targetModulesOf(config, lora), ['q_proj', 'v_proj']);
    assert.equal(loraTargets(config, lora).length, 2 * config.nLayers);

    // Without the override the chart's [Wqkv] reaches the coordinator, which refuses it for a Llama.
    const mptDefault = coordinatorArgs([]).lora_target_modules as readonly string[];
    assert.deepEqual(mptDefault, ['Wqkv']);
    assert.throws(() => loraTargets(config, { ...lora, targetModules: mptDefault }), /Wqkv/);
  });
});
