// Loads instruction data for --data_path: a .json array (or JSON lines), a .jsonl, a .parquet file,
// a directory of those, or a Hugging Face dataset id (via hf-cache.ts). Every row is checked once
// here; a bad row is an error naming file, row and field, or with skipBadRows is skipped and counted.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative } from 'node:path';
import { asyncBufferFromFile, parquetReadObjects } from 'hyparquet';
import { resolveHubDataset } from '../hub/datasets.ts';
import { type HubOptions, isHubId } from '../hub/hf-cache.ts';
import type { AlpacaFields } from './tokenize-example.ts';

export interface AlpacaRecord extends AlpacaFields {
  /** The file the row came from, for messages. */
  readonly file: string;
  /** 0-based index of the row within its file. */
  readonly row: number;
}

export interface BadRow {
  readonly file: string;
  readonly row: number;
  /** A message naming file, row (and line) and field. */
  readonly reason: string;
}

export interface LoadedDataset {
  readonly records: readonly AlpacaRecord[];
  /** Data files read, in the order their rows appear. */
  readonly files: readonly string[];
  /** Files in a data directory that are not data (README.md, .gitattributes, ...), listed, not read. */
  readonly ignoredFiles: readonly string[];
  /** Rows skipped with skipBadRows (empty otherwise: a bad row throws). */
  readonly skipped: readonly BadRow[];
}

export interface LoadOptions {
  readonly skipBadRows: boolean;
  /** Where to find (or fetch) Hugging Face dataset ids; without it an id is an error. */
  readonly hub?: HubOptions;
}

/** An error in the data; the message names file, row and field and says what to do. */
export class DataError extends Error {
  override name = 'DataError';
}

const FIELDS = ['instruction', 'input', 'output'] as const;
const DATA_EXTENSIONS = new Set(['.json', '.jsonl', '.parquet']);

export async function loadDataset(dataPath: string, o: LoadOptions): Promise<LoadedDataset> {
  let stat: ReturnType<typeof statSync> | undefined;
  try {
    stat = statSync(dataPath);
  } catch {
    stat = undefined;
  }
  if (stat === undefined) {
    if (!isHubId(dataPath))
      throw new DataError(
        `--data_path ${dataPath}: no such file or directory, and not a Hugging Face dataset id`,
      );
    if (o.hub === undefined)
      throw new DataError(`--data_path ${dataPath}: Hugging Face ids need the hub cache settings`);
    let snapshot: string;
    try {
      snapshot = await resolveHubDataset(dataPath, o.hub);
    } catch (err) {
      throw new DataError(
        `--data_path ${dataPath}: no such local file or directory; ${(err as Error).message}`,
      );
    }
    return loadDirectory(snapshot, o);
  }
  if (stat.isDirectory()) return loadDirectory(dataPath, o);
  const skipped: BadRow[] = [];
  const records = await loadFile(dataPath, o, skipped);
  return { records, files: [dataPath], ignoredFiles: [], skipped };
}

async function loadDirectory(dir: string, o: LoadOptions): Promise<LoadedDataset> {
  const all = listFiles(dir).sort();
  const files = all.filter((f) => DATA_EXTENSIONS.has(extname(f).toLowerCase()));
  if (files.length === 0)
    throw new DataError(`--data_path ${dir}: the directory holds no .json, .jsonl or .parquet file`);
  const skipped: BadRow[] = [];
  const records: AlpacaRecord[] = [];
  for (const f of files) for (const r of await loadFile(f, o, skipped)) records.push(r);
  const ignoredFiles = all.filter((f) => !files.includes(f)).map((f) => relative(dir, f));
  return { records, files, ignoredFiles, skipped };
}

/** Files under dir, recursively (HF snapshots keep parquet shards in data/), hidden ones left out. */
function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    // statSync follows symlinks: HF snapshots are symlinks into blobs/.
    if (statSync(path).isDirectory()) out.push(...listFiles(path));
    else out.push(path);
  }
  return out;
}

async function loadFile(file: string, o: LoadOptions, skipped: BadRow[]): Promise<AlpacaRecord[]> {
  const ext = extname(file).toLowerCase();
  const records: AlpacaRecord[] = [];
  const take = (value: unknown, row: number, where: string) => {
    const problem = checkRow(value);
    if (problem === undefined) {
      const v = value as Record<string, string>;
      records.push({ instruction: v.instruction!, input: v.input!, output: v.output!, file, row });
    } else reject(`${where}: ${problem}`, row);
  };
  const reject = (reason: string, row: number) => {
    if (!o.skipBadRows)
      throw new DataError(`${reason} (fix the row, or pass --skip_bad_rows to skip and count it)`);
    skipped.push({ file, row, reason });
  };

  if (ext === '.parquet') {
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: await asyncBufferFromFile(file) });
    } catch (err) {
      throw new DataError(`${file}: cannot read parquet (${(err as Error).message})`);
    }
    for (const [i, r] of rows.entries()) take(r, i, `${file} row ${i}`);
    return records;
  }
  if (ext !== '.json' && ext !== '.jsonl')
    throw new DataError(`--data_path ${file}: unknown file type; use .json, .jsonl or .parquet`);
  const text = readFileSync(file, 'utf8');
  if (ext === '.json') {
    const whole = tryParse(text);
    if (whole.ok) {
      if (!Array.isArray(whole.value))
        throw new DataError(`${file}: expected a JSON array of {instruction, input, output} objects`);
      for (const [i, r] of whole.value.entries()) take(r, i, `${file} row ${i}`);
      return records;
    }
    // Not one JSON document: read it as JSON lines, as HF's json loader does.
    if (!text.trimStart().startsWith('{')) throw new DataError(`${file}: not valid JSON (${whole.error})`);
  }
  let row = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    const where = `${file} line ${i + 1} (row ${row})`;
    const parsed = tryParse(line);
    if (parsed.ok) take(parsed.value, row, where);
    else reject(`${where}: not valid JSON (${parsed.error})`, row);
    row++;
  });
  return records;
}

function tryParse(text: string): { ok: true; value: unknown } | { ok: false; error: string } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** What is wrong with a row, or undefined when it has the three string fields. */
function checkRow(v: unknown): string | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    return `expected an object with "instruction", "input" and "output", got ${describe(v)}`;
  const o = v as Record<string, unknown>;
  for (const f of FIELDS) {
    if (!(f in o) || o[f] === undefined) return `"${f}" is missing`;
    if (typeof o[f] !== 'string') return `"${f}" is not a string (got ${describe(o[f])})`;
  }
  return undefined;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'bigint') return 'number';
  return typeof v;
}
