import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { coordinatorFlags, runCoordinator } from '../../src/cli/coordinator.ts';
import { helpText, parseFlags, UsageError } from '../../src/cli/flags.ts';
import { ALGORITHM_NAMES, DEFAULT_ALGORITHM } from '../../src/collective/index.ts';

// `lora-mpt coordinator --allreduce_algorithm`: the names come from the collective's registry, and
// a name it does not hold is a usage error naming the ones it does, before anything is loaded.

const flags = (...extra: string[]) =>
  parseFlags(coordinatorFlags, ['--base_model', 'unused', '--data_path', 'unused', ...extra]);

describe('--allreduce_algorithm', () => {
  for (const name of ['tree', 'Ring', 'toString', '']) {
    it(`refuses ${JSON.stringify(name)} as a usage error naming every known algorithm`, async () => {
      await assert.rejects(
        runCoordinator(flags('--allreduce_algorithm', name)),
        (e: unknown) =>
          e instanceof UsageError &&
          e.message ===
            `--allreduce_algorithm ${JSON.stringify(name)} is not an all-reduce algorithm: use one of ${ALGORITHM_NAMES.join(', ')}`,
      );
    });
  }

  it('defaults to the registry default and lists every algorithm in its help', () => {
    assert.equal(flags().allreduce_algorithm, DEFAULT_ALGORITHM);
    const help = helpText('lora-mpt coordinator', '', coordinatorFlags);
    for (const name of ALGORITHM_NAMES) assert.match(help, new RegExp(`${name} \\(`));
  });
});
