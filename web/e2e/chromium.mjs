// The system Chromium as every browser script here starts it: headless, with a fresh profile in
// /tmp, WebGPU on (SwiftShader) unless `webgpu` is false, and none of the background services
// whose connections this machine's closed network refuses.
import { chromium } from 'playwright-core';
import fs from 'node:fs';

export async function launch(profilePrefix, { webgpu = true } = {}) {
  const profile = fs.mkdtempSync(`/tmp/${profilePrefix}`);
  return chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [...(webgpu ? ['--enable-unsafe-webgpu'] : []), '--no-sandbox', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}
