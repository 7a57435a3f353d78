import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { coordinatorFlags } from '../../src/cli/coordinator.ts';
import { parseFlags } from '../../src/cli/flags.ts';
import {
  expandedArgs,
  find,
  type JobSpec,
  kubectlBin,
  parseObjects,
  root,
  validate,
  validatorVenv,
} from './chart.ts';

const kustomize = (dir: string) =>
  execFileSync(kubectlBin, ['kustomize', join(root, 'deploy', 'k8s', dir)], { encoding: 'utf8' });
const venv = validatorVenv();
const needsValidator =
  venv !== undefined || process.env.CI
    ? {}
    : { skip: 'strict validator not installed: bash scripts/setup-k8s-validate.sh' };

describe('deploy/k8s (kustomize)', () => {
  it('has a base that is the chart rendered with its default values (npm run gen:k8s)', () => {
    execFileSync(process.execPath, [join(root, 'scripts', 'gen-k8s.mjs'), '--check'], { encoding: 'utf8' });
    const objs = parseObjects(kustomize('base'));
    assert.ok(
      objs.every(
        (o) => o.kind === 'Namespace' || (o.metadata as { namespace?: string }).namespace === 'lora-mpt',
      ),
    );
    assert.deepEqual(
      objs.filter((o) => o.kind === 'Job').map((o) => o.metadata.name),
      ['lora-mpt-coordinator', 'lora-mpt-worker'],
    );
  });

  it('has an example overlay whose run takes the flags, workers, image and volume it patches', () => {
    const objs = parseObjects(kustomize('overlays/example'));
    const coordinator = (find(objs, 'Job', 'lora-mpt-coordinator').spec as unknown as JobSpec).template.spec
      .containers[0]!;
    const args = expandedArgs(coordinator, objs);
    const f = parseFlags(coordinatorFlags, args.slice(1));
    assert.equal(f.data_path, '/workspace/data/my-instructions.jsonl');
    assert.equal(f.output_dir, '/workspace/outputs/my-run');
    assert.equal(f.num_epochs, 1);
    assert.equal(f.learning_rate, 2e-4);
    assert.deepEqual(f.lora_target_modules, ['Wqkv', 'out_proj']);
    assert.equal(f.min_workers, 3);
    assert.equal(f.batch_size, 128, 'flags the overlay leaves alone keep the base value');
    assert.equal(coordinator.image, 'registry.example.com/ml/lora-mpt:0.1.0-gpu');
    const workers = find(objs, 'Job', 'lora-mpt-worker').spec as unknown as JobSpec;
    assert.equal(workers.completions, 4);
    assert.equal(workers.parallelism, 4);
    const pvc = find(objs, 'PersistentVolumeClaim', 'lora-mpt-workspace').spec as {
      storageClassName: string;
    };
    assert.equal(pvc.storageClassName, 'nfs-client');
  });

  it('builds objects valid for Kubernetes 1.31 and 1.32, unknown fields rejected', needsValidator, () => {
    assert.ok(venv, 'the strict validator is not installed: bash scripts/setup-k8s-validate.sh');
    for (const dir of ['base', 'overlays/example']) {
      const r = validate(venv, kustomize(dir), ['1.31', '1.32']);
      assert.ok(r.ok, `${dir}:\n${r.output}`);
    }
  });
});
