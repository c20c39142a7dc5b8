// Peak wasm memory of the page's worker while it downloads and loads a model with 7B-sized
// matrices: LLaMA-7B's embedding, lm_head and one decoder layer (hidden 4096, MLP 11008, vocab
// 32064) and CLIP-L's shapes at 336 px (two layers), f16 like the Hub's files, about 1 GB.
// The values are a repeated pattern (memory, not accuracy, is measured). Prints JSON.
//
// usage: node web/e2e/measure-memory.mjs DIST_DIR [DTYPE]   (Trunk build; DTYPE default q4)
import { openPanel } from './report.mjs';
import { chromium } from 'playwright-core';
import { serve } from './serve.mjs';
import fs from 'node:fs';
import path from 'node:path';

const [dist, dtype = 'q4'] = process.argv.slice(2);
if (!dist) { console.error('usage: node web/e2e/measure-memory.mjs DIST_DIR [DTYPE]'); process.exit(2); }

const demo = path.join(dist, 'models/scenes-tiny');
const config = JSON.parse(fs.readFileSync(path.join(demo, 'config.json'), 'utf8'));
Object.assign(config.text_config, { hidden_size: 4096, intermediate_size: 11008, num_attention_heads: 32, num_key_value_heads: 32,
  head_dim: 128, num_hidden_layers: 1, vocab_size: 32064, max_position_embeddings: 4096 });
Object.assign(config.vision_config, { hidden_size: 1024, intermediate_size: 4096, num_attention_heads: 16, num_hidden_layers: 2,
  image_size: 336, patch_size: 14, projection_dim: 768 });
config.image_seq_length = 576;
config.dtype = 'float16';

const t = config.text_config, v = config.vision_config;
const shapes = {
  'language_model.lm_head.weight': [t.vocab_size, t.hidden_size],
  'language_model.model.embed_tokens.weight': [t.vocab_size, t.hidden_size],
  'language_model.model.norm.weight': [t.hidden_size],
  'multi_modal_projector.linear_1.weight': [t.hidden_size, v.hidden_size],
  'multi_modal_projector.linear_1.bias': [t.hidden_size],
  'multi_modal_projector.linear_2.weight': [t.hidden_size, t.hidden_size],
  'multi_modal_projector.linear_2.bias': [t.hidden_size],
  'vision_tower.embeddings.class_embedding': [v.hidden_size],
  'vision_tower.embeddings.patch_embedding.weight': [v.hidden_size, 3, v.patch_size, v.patch_size],
  'vision_tower.embeddings.position_embedding.weight': [(v.image_size / v.patch_size) ** 2 + 1, v.hidden_size],
  'vision_tower.pre_layrnorm.weight': [v.hidden_size],
  'vision_tower.pre_layrnorm.bias': [v.hidden_size],
  'vision_tower.post_layernorm.weight': [v.hidden_size],
  'vision_tower.post_layernorm.bias': [v.hidden_size],
};
for (let l = 0; l < t.num_hidden_layers; l++) {
  const p = `language_model.model.layers.${l}.`;
  for (const n of ['input_layernorm', 'post_attention_layernorm']) shapes[`${p}${n}.weight`] = [t.hidden_size];
  for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) shapes[`${p}self_attn.${n}.weight`] = [t.hidden_size, t.hidden_size];
  shapes[`${p}mlp.gate_proj.weight`] = [t.intermediate_size, t.hidden_size];
  shapes[`${p}mlp.up_proj.weight`] = [t.intermediate_size, t.hidden_size];
  shapes[`${p}mlp.down_proj.weight`] = [t.hidden_size, t.intermediate_size];
}
for (let l = 0; l < v.num_hidden_layers; l++) {
  const p = `vision_tower.encoder.layers.${l}.`;
  for (const n of ['layer_norm1', 'layer_norm2']) { shapes[`${p}${n}.weight`] = [v.hidden_size]; shapes[`${p}${n}.bias`] = [v.hidden_size]; }
  for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) { shapes[`${p}self_attn.${n}.weight`] = [v.hidden_size, v.hidden_size]; shapes[`${p}self_attn.${n}.bias`] = [v.hidden_size]; }
  shapes[`${p}mlp.fc1.weight`] = [v.intermediate_size, v.hidden_size];
  shapes[`${p}mlp.fc1.bias`] = [v.intermediate_size];
  shapes[`${p}mlp.fc2.weight`] = [v.hidden_size, v.intermediate_size];
  shapes[`${p}mlp.fc2.bias`] = [v.hidden_size];
}
const header = {};
let off = 0;
for (const [k, s] of Object.entries(shapes)) {
  const bytes = s.reduce((a, b) => a * b, 1) * 2;
  header[k] = { dtype: 'F16', shape: s, data_offsets: [off, off + bytes] };
  off += bytes;
}
const json = Buffer.from(JSON.stringify(header));
const file = Buffer.alloc(8 + json.length + off);
file.writeBigUInt64LE(BigInt(json.length), 0);
json.copy(file, 8);
// Small finite f16 values (|x| < 0.06), repeated.
const pattern = Buffer.alloc(1 << 16);
for (let i = 0; i < pattern.length / 2; i++) pattern.writeUInt16LE(0x2000 + ((i * 2654435761) >>> 0) % 0x0800 + ((i & 1) << 15), i * 2);
file.fill(pattern, 8 + json.length);
const big = { 'config.json': Buffer.from(JSON.stringify(config)), 'tokenizer.json': fs.readFileSync(path.join(demo, 'tokenizer.json')), 'model.safetensors': file };

const { server, base } = await serve(dist, {
  '/big/': (req, res, name) => {
    const data = big[name];
    if (!data) { res.writeHead(404); return res.end(); }
    res.writeHead(200, { 'content-length': data.length, 'accept-ranges': 'bytes' });
    res.end(req.method === 'HEAD' ? undefined : data);
  },
});
const profile = fs.mkdtempSync('/tmp/llava-lens-mem-');
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--enable-unsafe-webgpu', '--no-sandbox', '--disable-background-networking', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  const t0 = Date.now();
  await page.goto(`${base}?model=${encodeURIComponent(base + 'big/')}&dtype=${dtype}`);
  await openPanel(page, 'model');
  await page.locator('[data-testid=confirm-load], [data-testid=error]').first().waitFor({ timeout: 120_000 });
  if (await page.getByTestId('error').count()) throw new Error(await page.getByTestId('error').innerText());
  const plan = await page.getByTestId('plan').innerText();
  const t1 = Date.now();
  await page.getByTestId('confirm-load').click();
  await page.locator('[data-testid=error], [data-testid=status]:text-matches("^ready")').first().waitFor({ timeout: 1_800_000 });
  if (await page.getByTestId('error').count()) throw new Error(await page.getByTestId('error').innerText());
  // The status line names the model; its tooltip the adapter and the worker's memory.
  const status = `${await page.getByTestId('status').innerText()} (${await page.getByTestId('status').getAttribute('title')})`;
  console.log(JSON.stringify({ file_bytes: file.length, dtype, plan, status, download_and_load_ms: Date.now() - t1, page_ms: t1 - t0 }, null, 2));
} finally {
  await browser.close();
  server.close();
}
