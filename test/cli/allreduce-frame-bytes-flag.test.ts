import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coordinatorFlags, runCoordinator } from '../../src/cli/coordinator.ts';
import { helpText, parseFlags, UsageError } from '../../src/cli/flags.ts';
import { parseRunConfig } from '../../src/train/run-config.ts';
import { testRunConfig } from '../support/run-config.ts';

// `lora-mpt coordinator --allreduce_frame_bytes`: 0 (the NATS server's max_payload) unless asked, a
// size below 4096 is a usage error before anything is loaded, and the run config carries it to every
// worker. A size above the server's max_payload is refused in test/e2e/bf16-encoding.test.ts, where
// a real server answers.

const flags = (...extra: string[]) =>
  parseFlags(coordinatorFlags, ['--base_model', 'unused', '--data_path', 'unused', ...extra]);

describe('--allreduce_frame_bytes', () => {
  for (const bytes of ['1', '140', '4095']) {
    it(`refuses ${bytes} as a usage error naming 0 and 4096`, async () => {
      await assert.rejects(
        runCoordinator(flags('--allreduce_frame_bytes', bytes)),
        (e: unknown) =>
          e instanceof UsageError &&
          e.message ===
            `--allreduce_frame_bytes ${bytes}: use 0 (the NATS server's max_payload) or at least 4096`,
      );
    });
  }

  it('refuses a negative or fractional size as the flag parser does', () => {
    assert.throws(() => flags('--allreduce_frame_bytes', '-1'), /--allreduce_frame_bytes/);
    assert.throws(() => flags('--allreduce_frame_bytes', '4096.5'), /--allreduce_frame_bytes/);
  });

  it("defaults to 0 and explains the server's max_payload in its help", () => {
    assert.equal(flags().allreduce_frame_bytes, 0);
    assert.match(
      helpText('lora-mpt coordinator', '', coordinatorFlags),
      /--allreduce_frame_bytes.*max_payload/s,
    );
  });
});

describe('run config: allReduceFrameBytes', () => {
  const json = (bytes: unknown) => JSON.stringify({ ...testRunConfig('r'), allReduceFrameBytes: bytes });

  it('keeps a size, and reads a config without it (an older coordinator) as 0', () => {
    assert.equal(parseRunConfig(json(65536)).allReduceFrameBytes, 65536);
    assert.equal(parseRunConfig(json(0)).allReduceFrameBytes, 0);
    assert.equal(parseRunConfig(json(undefined)).allReduceFrameBytes, 0);
  });

  for (const bad of [-1, 1.5, '4096', null]) {
    it(`refuses ${JSON.stringify(bad)}, naming the field`, () => {
      assert.throws(
        () => parseRunConfig(json(bad)),
        /run config: "allReduceFrameBytes" must be a whole number of bytes >= 0, got /,
      );
    });
  }
});
