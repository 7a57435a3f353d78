import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { FlagSpec } from '../../src/cli/flags.ts';
import { trainingFlags } from '../../src/cli/training-flags.ts';
import { chartDir, renderError } from './chart.ts';

// run.baseModel, run.dataPath and run.outputDir carry these three; run.training takes the rest.
const RUN_PATHS = ['base_model', 'data_path', 'output_dir'];

interface PropertySchema {
  type: string | string[];
  minimum?: number;
  items?: { type: string };
}

function expectedSchema(spec: FlagSpec): PropertySchema {
  const min = 'min' in spec && spec.min !== undefined ? { minimum: spec.min } : {};
  switch (spec.kind) {
    case 'int':
      return { type: 'integer', ...min };
    case 'float': // helm --set passes 2e-4 as a string: a number or a numeric string
      return { type: ['number', 'string'], ...min };
    case 'bool':
      return { type: 'boolean' };
    case 'string':
      return { type: 'string' };
    case 'list': // null: the flag left out, its default (helm keeps a null the chart has no default for)
      return { type: ['array', 'string', 'null'], items: { type: 'string' } };
  }
}

describe('values.schema.json of helm/lora-mpt', () => {
  const schema = JSON.parse(readFileSync(join(chartDir, 'values.schema.json'), 'utf8'));
  const training = schema.properties.run.properties.training as {
    additionalProperties: boolean;
    properties: Record<string, PropertySchema & { pattern?: string }>;
  };

  it('accepts in run.training exactly the training flags of the CLI, with their types and minimums', () => {
    assert.equal(training.additionalProperties, false);
    const flags = Object.keys(trainingFlags).filter((k) => !RUN_PATHS.includes(k));
    assert.deepEqual(
      Object.keys(training.properties).sort(),
      flags.sort(),
      'run.training must list every flag of src/cli/training-flags.ts but base_model, data_path, output_dir',
    );
    for (const [name, spec] of Object.entries(trainingFlags)) {
      if (RUN_PATHS.includes(name)) continue;
      const { pattern: _, ...got } = training.properties[name]!;
      assert.deepEqual(got, expectedSchema(spec), `run.training.${name}`);
    }
  });

  it('refuses to render a typo in a value name, at any depth', () => {
    for (const [set, where, name] of [
      ['workers.replica=4', 'workers', 'replica'],
      ['run.training.num_epoch=1', 'run.training', 'num_epoch'],
      ['imagePullSecret[0]=x', '\\(root\\)', 'imagePullSecret'],
      ['coordinator.livenessProbe.periodSecond=5', 'coordinator.livenessProbe', 'periodSecond'],
    ] as const) {
      assert.match(
        renderError({ set: [set] }) ?? 'rendered',
        new RegExp(`- ${where}: Additional property ${name} is not allowed`),
        `--set ${set}`,
      );
    }
  });

  it('refuses values of the wrong type or range', () => {
    for (const [set, field] of [
      ['workers.replicas=abc', 'workers.replicas'],
      ['workers.replicas=0', 'workers.replicas'],
      ['run.training.num_epochs=three', 'num_epochs'],
      ['run.training.learning_rate=fast', 'learning_rate'],
      ['run.training.group_by_length=maybe', 'group_by_length'],
      ['podSecurity.runAsUser=0', 'runAsUser'],
      ['jobSet.enabled=sometimes', 'jobSet.enabled'],
      ['workers.backend=gpu', 'workers.backend'],
      ['nats.url=http://bus:4222', 'nats.url'],
    ] as const) {
      const err = renderError({ set: [set] });
      assert.ok(err !== undefined, `--set ${set} rendered`);
      assert.match(err, new RegExp(field.replace('.', '\\.')), `--set ${set}: ${err}`);
    }
  });

  it('renders the values it documents: a float flag from --set, a list as YAML or as the CLI writes it', () => {
    assert.equal(renderError({ set: ['run.training.learning_rate=2e-4'] }), undefined);
    assert.equal(renderError({ set: ['run.training.lora_target_modules=[Wqkv\\,out_proj]'] }), undefined);
    assert.equal(renderError({ set: ['run.training.lora_target_modules={Wqkv,out_proj}'] }), undefined);
    assert.equal(renderError({ set: ['jobSet.enabled=true'] }), undefined);
  });

  it('requires nats.url when the bundled NATS is off', () => {
    assert.match(renderError({ set: ['nats.enabled=false'] }) ?? '', /nats\.url is required/);
  });
});
