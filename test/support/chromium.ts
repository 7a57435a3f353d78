// Real headless Chromium for page tests: Debian's `chromium` (installed by scripts/setup.sh) driven
// through playwright-core, which downloads no browser of its own. CHROMIUM_PATH names another one.
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const hasChromium = existsSync(chromiumPath);

export function launchChromium(): Promise<Browser> {
  // --no-sandbox: the tests may run as root (CI containers), where Chromium's sandbox refuses to start.
  return chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
}
