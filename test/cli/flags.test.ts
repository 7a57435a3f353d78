import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { helpText, parseFlags, UsageError } from '../../src/cli/flags.ts';

const specs = {
  base_model: { kind: 'string', help: 'model' },
  micro_batch_size: { kind: 'int', help: 'rows', default: 4, min: 1 },
  learning_rate: { kind: 'float', help: 'lr', default: 3e-4 },
  train_on_inputs: { kind: 'bool', help: 'mask', default: true },
  group_by_length: { kind: 'bool', help: 'group', default: false },
  lora_target_modules: { kind: 'list', help: 'targets', default: ['q_proj', 'v_proj'] },
} as const;

describe('command-line flags (python-fire conventions)', () => {
  it('fills defaults for flags not given', () => {
    const f = parseFlags(specs, []);
    assert.equal(f.micro_batch_size, 4);
    assert.equal(f.base_model, undefined);
    assert.deepEqual(f.lora_target_modules, ['q_proj', 'v_proj']);
  });

  it('reads --name value and --name=value', () => {
    const f = parseFlags(specs, ['--base_model', 'mosaicml/mpt-7b', '--learning_rate=1e-4']);
    assert.equal(f.base_model, 'mosaicml/mpt-7b');
    assert.equal(f.learning_rate, 1e-4);
  });

  it('takes a bare boolean flag as true and --noflag or =False as false', () => {
    assert.equal(parseFlags(specs, ['--group_by_length']).group_by_length, true);
    assert.equal(parseFlags(specs, ['--notrain_on_inputs']).train_on_inputs, false);
    assert.equal(parseFlags(specs, ['--train_on_inputs=False']).train_on_inputs, false);
    assert.equal(parseFlags(specs, ['--train_on_inputs', 'False']).train_on_inputs, false);
  });

  it('parses the seed list syntax with and without quotes', () => {
    assert.deepEqual(parseFlags(specs, ['--lora_target_modules', '[Wqkv]']).lora_target_modules, ['Wqkv']);
    assert.deepEqual(
      parseFlags(specs, ['--lora_target_modules', '["Wqkv", \'out_proj\']']).lora_target_modules,
      ['Wqkv', 'out_proj'],
    );
    assert.deepEqual(parseFlags(specs, ['--lora_target_modules=Wqkv,up_proj']).lora_target_modules, [
      'Wqkv',
      'up_proj',
    ]);
  });

  it('names the flag in every error', () => {
    assert.throws(
      () => parseFlags(specs, ['--micro_batch_size', 'four']),
      /--micro_batch_size: "four" is not a whole/,
    );
    assert.throws(() => parseFlags(specs, ['--micro_batch_size', '0']), /--micro_batch_size: 0 is below 1/);
    assert.throws(() => parseFlags(specs, ['--batchsize', '3']), UsageError);
    assert.throws(() => parseFlags(specs, ['--base_model']), /--base_model needs a value/);
    assert.throws(() => parseFlags(specs, ['--lora_target_modules', '[Wqkv']), /does not close/);
  });

  it('lists every flag with its default in the help text', () => {
    const text = helpText('lora-mpt x', 'desc', specs);
    for (const name of Object.keys(specs)) assert.match(text, new RegExp(`--${name}`));
    assert.match(text, /--learning_rate <float> \(default: 0.0003\)/);
  });
});
