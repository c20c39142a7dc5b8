// Safetensors files in the test's hands: a model split into an HF sharded folder, and the
// tensors of a golden fixture.
import fs from 'node:fs';

/** A safetensors file split into an HF sharded folder: its tensors dealt alternately into two
 * shards, and `model.safetensors.index.json` naming each tensor's shard (name -> bytes). */
export function shard(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString());
  const names = Object.keys(header).filter((k) => k !== '__metadata__').sort((a, b) => header[a].data_offsets[0] - header[b].data_offsets[0]);
  const parts = [[], []];
  names.forEach((k, i) => parts[i % 2].push(k));
  const weightMap = {};
  const files = {};
  parts.forEach((keys, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    const h = {};
    const chunks = [];
    let off = 0;
    for (const k of keys) {
      const [a, b] = header[k].data_offsets;
      h[k] = { dtype: header[k].dtype, shape: header[k].shape, data_offsets: [off, off + b - a] };
      chunks.push(buf.subarray(8 + n + a, 8 + n + b));
      off += b - a;
      weightMap[k] = name;
    }
    const json = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    files[name] = Buffer.concat([len, json, ...chunks]);
  });
  files['model.safetensors.index.json'] = Buffer.from(JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return files;
}
// The tensors of a safetensors file (golden fixtures): F32 as Float32Array, I64 as BigInt64Array.
export function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString());
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const bytes = buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]);
    const copy = Uint8Array.from(bytes).buffer;
    out[name] = t.dtype === 'F32' ? new Float32Array(copy) : t.dtype === 'I64' ? new BigInt64Array(copy) : bytes;
  }
  return out;
}
