import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coordinatorFlags, runCoordinator } from '../../src/cli/coordinator.ts';
import { helpText, parseFlags, UsageError } from '../../src/cli/flags.ts';
import { parseRunConfig } from '../../src/train/run-config.ts';
import { testRunConfig } from '../support/run-config.ts';

// `lora-mpt coordinator --allreduce_encoding`: f32 unless asked, a name outside f32/bf16 is a usage
// error before anything is loaded, and the run config carries it to every worker.

const flags = (...extra: string[]) =>
  parseFlags(coordinatorFlags, ['--base_model', 'unused', '--data_path', 'unused', ...extra]);

describe('--allreduce_encoding', () => {
  for (const name of ['fp16', 'BF16', 'float32', '']) {
    it(`refuses ${JSON.stringify(name)} as a usage error naming f32 and bf16`, async () => {
      await assert.rejects(
        runCoordinator(flags('--allreduce_encoding', name)),
        (e: unknown) =>
          e instanceof UsageError &&
          e.message === `--allreduce_encoding ${JSON.stringify(name)}: use one of f32, bf16`,
      );
    });
  }

  it('defaults to f32 and explains bf16 in its help', () => {
    assert.equal(flags().allreduce_encoding, 'f32');
    assert.match(helpText('lora-mpt coordinator', '', coordinatorFlags), /--allreduce_encoding.*bf16/s);
  });
});

describe('run config: allReduceEncoding', () => {
  const json = (encoding: unknown) => JSON.stringify({ ...testRunConfig('r'), allReduceEncoding: encoding });

  it('keeps bf16 and f32, and reads a config without it (an older coordinator) as f32', () => {
    assert.equal(parseRunConfig(json('bf16')).allReduceEncoding, 'bf16');
    assert.equal(parseRunConfig(json('f32')).allReduceEncoding, 'f32');
    assert.equal(parseRunConfig(json(undefined)).allReduceEncoding, 'f32');
  });

  it('refuses any other value, naming the field', () => {
    assert.throws(
      () => parseRunConfig(json('fp8')),
      /run config: "allReduceEncoding" must be one of f32, bf16, got "fp8"/,
    );
  });
});
