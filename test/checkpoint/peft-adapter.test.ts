import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loraScaling } from '../../src/checkpoint/lora-spec.ts';
import {
  loraConfigJson,
  newLoraConfig,
  parseLoraConfig,
  readPeftAdapter,
  writePeftAdapter,
} from '../../src/checkpoint/peft-adapter.ts';
import { pyFloatRepr, pyJsonDumps } from '../../src/formats/py-json.ts';
import { CASES, FIXTURES, sameBits } from './fixtures.ts';

const tmp = mkdtempSync(join(tmpdir(), 'lora-mpt-peft-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const text = (p: string) => readFileSync(p, 'utf8');

describe('PEFT adapter files', () => {
  it('reads the adapters PEFT saved (safetensors), with their LoRA config', async () => {
    const a = await readPeftAdapter(join(FIXTURES, 'h6-all', 'adapter_init'));
    assert.equal(a.config.lora.r, 4);
    assert.equal(a.config.lora.loraAlpha, 16);
    assert.equal(a.config.lora.loraDropout, 0);
    assert.deepEqual([...(a.config.lora.targetModules ?? [])].sort(), [
      'Wqkv',
      'down_proj',
      'out_proj',
      'up_proj',
    ]);
    assert.equal(a.config.baseModelNameOrPath, 'test/fixtures/mpt/h6-all');
    assert.equal(loraScaling(a.config.lora), 4);
    assert.equal(a.tensors.size, 2 * 4 * 2);
    assert.deepEqual(
      a.tensors.get('base_model.model.transformer.blocks.1.ffn.up_proj.lora_B.weight')!.shape,
      [192, 4],
    );
    const rs = await readPeftAdapter(join(FIXTURES, 'h8-clip-bf16', 'adapter_init'));
    assert.equal(rs.config.lora.useRslora, true);
    assert.equal(loraScaling(rs.config.lora), 4);
  });

  it('reads adapter_model.bin (torch.save, PEFT safe_serialization=False) bitwise equal to the safetensors', async () => {
    const bin = await readPeftAdapter(join(FIXTURES, 'h6-all', 'adapter_init_bin'));
    const st = await readPeftAdapter(join(FIXTURES, 'h6-all', 'adapter_init'));
    assert.deepEqual([...bin.tensors.keys()].sort(), [...st.tensors.keys()].sort());
    for (const [k, t] of st.tensors) assert.ok(sameBits(bin.tensors.get(k)!.data, t.data), k);
  });

  for (const c of CASES) {
    for (const sub of ['adapter_init', 'adapter_step3']) {
      it(`${c}/${sub}: writes back PEFT's adapter_config.json and safetensors byte for byte`, async () => {
        const src = join(FIXTURES, c, sub);
        const a = await readPeftAdapter(src);
        const out = join(tmp, c, sub);
        await writePeftAdapter(out, a);
        assert.equal(text(join(out, 'adapter_config.json')), text(join(src, 'adapter_config.json')));
        assert.ok(
          readFileSync(join(out, 'adapter_model.safetensors')).equals(
            readFileSync(join(src, 'adapter_model.safetensors')),
          ),
        );
      });
    }
  }

  it("writes a new config with PEFT 0.21's fields and defaults, equal to PEFT's own file", () => {
    const peft = text(join(FIXTURES, 'h6-all', 'adapter_init', 'adapter_config.json'));
    const order = (JSON.parse(peft) as { target_modules: string[] }).target_modules; // PEFT keeps a set
    const mine = newLoraConfig(
      { r: 4, loraAlpha: 16, loraDropout: 0, targetModules: order },
      'test/fixtures/mpt/h6-all',
    );
    assert.equal(loraConfigJson(mine), peft);
    const rs = newLoraConfig(
      { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv', 'down_proj'], useRslora: true },
      'test/fixtures/mpt/h8-clip-bf16',
    );
    const peftRs = text(join(FIXTURES, 'h8-clip-bf16', 'adapter_init', 'adapter_config.json'));
    const want = (JSON.parse(peftRs) as { target_modules: string[] }).target_modules;
    assert.equal(loraConfigJson({ ...rs, lora: { ...rs.lora, targetModules: want } }), peftRs);
    const peftDora = text(
      fileURLToPath(
        new URL('../fixtures/dora-train/dora-h12-wqkv/adapter/adapter_config.json', import.meta.url),
      ),
    );
    const dora = newLoraConfig(
      { r: 4, loraAlpha: 8, loraDropout: 0, targetModules: ['Wqkv'], useDora: true },
      'test/fixtures/mpt/h12-wqkv',
    );
    assert.equal(loraConfigJson(dora), peftDora);
  });

  it('refuses configs it cannot honour, naming the field', () => {
    assert.throws(
      () => parseLoraConfig({ peft_type: 'IA3', target_modules: ['Wqkv'] }, 'a.json'),
      /a\.json: "peft_type"/,
    );
    assert.throws(
      () => parseLoraConfig({ target_modules: ['Wqkv'], fan_in_fan_out: true }, 'a.json'),
      /"fan_in_fan_out" must be false for MPT/,
    );
    assert.throws(() => parseLoraConfig({ target_modules: [] }, 'a.json'), /"target_modules"/);
    assert.equal(parseLoraConfig({ target_modules: '.*Wqkv' }, 'a.json').lora.targetModules, '.*Wqkv');
  });

  it('refuses an adapter whose A/B shapes do not fit r', async () => {
    const a = await readPeftAdapter(join(FIXTURES, 'h12-wqkv', 'adapter_init'));
    await assert.rejects(
      writePeftAdapter(join(tmp, 'bad'), { ...a, config: { ...a.config, lora: { ...a.config.lora, r: 8 } } }),
      /do not fit r=8/,
    );
  });
});

describe("Python's json.dumps formatting", () => {
  it('prints floats like repr() (values printed by CPython 3.11)', () => {
    const xs = [0.05, 1e-5, 0.0001, 1, 16, 1e16, 1.5e16, 123456789.125, 2.5e-7, 0.1, 1 / 3, -0.001, 1e22];
    const python = [
      '0.05',
      '1e-05',
      '0.0001',
      '1.0',
      '16.0',
      '1e+16',
      '1.5e+16',
      '123456789.125',
      '2.5e-07',
      '0.1',
      '0.3333333333333333',
      '-0.001',
      '1e+22',
    ];
    assert.deepEqual(xs.map(pyFloatRepr), python);
  });

  it('escapes non-ASCII like ensure_ascii and sorts keys by code point', () => {
    assert.equal(
      pyJsonDumps({ b: 'é\n', a: [], Z: {} }),
      '{\n  "Z": {},\n  "a": [],\n  "b": "\\u00e9\\n"\n}',
    );
  });
});
