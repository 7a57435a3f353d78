// The one list of model families, chosen by config.json's `model_type`. Adding a family is its folder
// (src/families/<name>: spec.ts pure, compute.ts lazy) and one line here.
import type { ModelConfig } from '../checkpoint/architecture.ts';
import { ConfigError, isJsonObject } from '../checkpoint/config-fields.ts';
import { LLAMA_FAMILY } from './llama/spec.ts';
import { MPT_FAMILY } from './mpt/spec.ts';
import type { ModelFamily } from './types.ts';

export const FAMILIES: readonly ModelFamily[] = [MPT_FAMILY, LLAMA_FAMILY];

const known = () => FAMILIES.map((f) => f.modelType).join(', ');

/** The family of `modelType`; throws naming `source`, the value and the known families. */
export function familyOf(modelType: unknown, source: string): ModelFamily {
  const family = FAMILIES.find((f) => f.modelType === modelType);
  if (family === undefined) {
    throw new ConfigError(
      `${source}: "model_type" ${JSON.stringify(modelType) ?? 'absent'} is no model family this program knows (known: ${known()})`,
    );
  }
  return family;
}

/** Parses config.json with the family its `model_type` names. */
export function parseModelConfig(json: unknown, source: string): ModelConfig {
  if (!isJsonObject(json)) throw new ConfigError(`${source}: expected a JSON object at the top level`);
  return familyOf(json.model_type, source).parseConfig(json, source);
}
