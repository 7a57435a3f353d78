import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openBaseModel } from '../../src/cli/base-model.ts';
import { UsageError } from '../../src/cli/flags.ts';
import { backendModelMismatch, syntheticPeak, syntheticProfileOf } from '../../src/cli/synthetic-flags.ts';

describe('--backend synthetic and --base_model synthetic:...', () => {
  it('go together: either without the other is named, both ways', () => {
    assert.equal(backendModelMismatch('synthetic', 'synthetic:mpt-7b'), undefined);
    assert.equal(backendModelMismatch('auto', 'mosaicml/mpt-7b'), undefined);
    assert.match(
      backendModelMismatch('synthetic', 'mosaicml/mpt-7b') ?? '',
      /--backend synthetic runs no model: .*not mosaicml\/mpt-7b/,
    );
    for (const backend of ['auto', 'tensorflow', 'wasm', 'cpu']) {
      assert.match(
        backendModelMismatch(backend, 'synthetic:mpt-7b') ?? '',
        new RegExp(`runs on --backend synthetic only \\(this process has --backend ${backend}\\)`),
      );
    }
  });

  it('turn --gpu_profile none into no profile and no MFU peak', () => {
    const p = syntheticProfileOf({ gpu_profile: 'none', gpu_mfu: 0.5 }, {});
    assert.equal(p, null);
    assert.equal(syntheticPeak(p, undefined), null);
  });

  it('give the modelled GPU as the MFU peak: the table, or the flag that replaced it', () => {
    const table = syntheticProfileOf({ gpu_profile: 'a100-80gb', gpu_mfu: 0.5 }, {});
    assert.deepEqual(
      { ...syntheticPeak(table, undefined), text: undefined },
      { flopsPerSecond: 19.5e12, source: 'table', text: undefined },
    );
    const tf32 = syntheticProfileOf({ gpu_profile: 'a100-80gb', gpu_mfu: 0.5 }, { LORA_MPT_TF32: '1' });
    assert.equal(tf32?.peakFlopsPerSecond, 156e12);
    const given = syntheticProfileOf({ gpu_profile: 'a100-80gb', gpu_mfu: 0.5, peak_tflops: 312 }, {});
    assert.equal(syntheticPeak(given, 312)?.source, 'flag');
    assert.equal(given?.peakFlopsPerSecond, 312e12);
  });

  it('refuse an unknown profile or MFU as a usage error naming the flags', () => {
    assert.throws(
      () => syntheticProfileOf({ gpu_profile: 'b300', gpu_mfu: 0.5 }, {}),
      (e: Error) => e instanceof UsageError && /--gpu_profile b300 .*"b300" is unknown/.test(e.message),
    );
    assert.throws(
      () => syntheticProfileOf({ gpu_profile: 'l4', gpu_mfu: 1.5 }, {}),
      (e: Error) => e instanceof UsageError && /--gpu_mfu 1.5: .*MFU 1.5 is not in/.test(e.message),
    );
  });

  it('have no weights: DoRA, which starts from them, is refused naming the tensor', async () => {
    const m = await openBaseModel('synthetic:mpt-7b');
    assert.equal(m.dir, 'synthetic:mpt-7b');
    await assert.rejects(
      m.readTensor('transformer.blocks.0.attn.Wqkv.weight'),
      /synthetic:mpt-7b has no weights, yet transformer\.blocks\.0\.attn\.Wqkv\.weight .*plain LoRA only/,
    );
  });
});
