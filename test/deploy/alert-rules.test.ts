import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { alertRules } from '../support/dashboard.ts';
import { ALERT_RULES, ALERT_TESTS, needsPromtool, promtool } from '../support/promtool.ts';

describe('alert rules (helm/lora-mpt/files/alerts.yaml)', () => {
  it('pass promtool check rules', needsPromtool, () => {
    const r = promtool(['check', 'rules', ALERT_RULES]);
    assert.ok(r.ok, r.output);
  });

  it(
    'fire on the trouble each names and stay quiet on healthy runs (promtool test rules)',
    needsPromtool,
    () => {
      const r = promtool(['test', 'rules', ALERT_TESTS]);
      assert.ok(r.ok, r.output);
    },
  );

  it('each have a unit test', () => {
    const tested = new Set(
      [...readFileSync(ALERT_TESTS, 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]),
    );
    for (const rule of alertRules()) assert.ok(tested.has(rule.alert), `${rule.alert} has no promtool test`);
  });
});
