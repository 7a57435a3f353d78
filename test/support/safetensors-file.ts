// Every tensor of a safetensors file as float32 by name (fixtures written by tools/reference, files
// lora-mpt wrote), through the product's reader.
import { SafetensorsReader } from '../../src/formats/safetensors.ts';

export async function readSafetensorsFile(path: string): Promise<Map<string, Float32Array>> {
  const r = await SafetensorsReader.open(path);
  try {
    const out = new Map<string, Float32Array>();
    for await (const t of r.tensors()) out.set(t.name, t.data);
    return out;
  } finally {
    await r.close();
  }
}
