// BLAKE3's published test vectors (BLAKE3-team/BLAKE3, test_vectors/test_vectors.json): the keyed
// hash of `input_len` bytes 0, 1, ..., 250, 0, 1, ... under the key below, first 32 bytes. Lengths on
// both sides of BLAKE3's 1 KiB chunks and of 16-chunk (AVX-512) batches.
export const VECTOR_KEY = new TextEncoder().encode('whats the Elvish word for friend');
export const KEYED_VECTORS: readonly (readonly [number, string])[] = [
  [0, '92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26'],
  [1023, 'c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e'],
  [1025, '357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69'],
  [4097, '00df940cd36bb9fa7cbbc3556744e0dbc8191401afe70520ba292ee3ca80abbc'],
  [16384, '9e9fc4eb7cf081ea7c47d1807790ed211bfec56aa25bb7037784c13c4b707b0d'],
  [31744, 'efa53b389ab67c593dba624d898d0f7353ab99e4ac9d42302ee64cbf9939a419'],
  [102400, '1c35d1a5811083fd7119f5d5d1ba027b4d01c0c6c49fb6ff2cf75393ea5db4a7'],
];
export const vectorInput = (length: number): Uint8Array => Uint8Array.from({ length }, (_, i) => i % 251);
