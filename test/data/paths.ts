// Where the shared, read-only reference data lives (../shared/data from the repository root).
import { fileURLToPath } from 'node:url';

export const TOKENIZER_JSON = fileURLToPath(
  new URL('../../../shared/data/gpt-neox-20b/tokenizer.json', import.meta.url),
);
export const ALPACA_JSON = fileURLToPath(new URL('../../../shared/data/alpaca_data.json', import.meta.url));
export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
