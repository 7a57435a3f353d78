// The shipped Grafana dashboard and alert rules as tests read them: every panel query (with the
// dashboard's variables filled in for a run) and every alert expression.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const CHART_FILES = new URL('../../helm/lora-mpt/files/', import.meta.url);

export interface PanelQuery {
  readonly panel: string;
  readonly refId: string;
  readonly legend: string;
  readonly expr: string;
}

interface Dashboard {
  readonly panels: readonly {
    readonly title: string;
    readonly targets: readonly { refId: string; expr: string; legendFormat?: string }[];
  }[];
  readonly templating: { readonly list: readonly { name: string; type: string; definition?: string }[] };
}

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(fileURLToPath(new URL('dashboard.json', CHART_FILES)), 'utf8')) as Dashboard;
}

export function dashboardExpressions(): PanelQuery[] {
  return dashboard().panels.flatMap((p) =>
    p.targets.map((t) => ({ panel: p.title, refId: t.refId, legend: t.legendFormat ?? '', expr: t.expr })),
  );
}

/** The expression as Grafana sends it for run `runId`, rate windows of `rateInterval` (e.g. '5s'). */
export function fillVariables(
  expr: string,
  v: { readonly runId: string; readonly rateInterval: string },
): string {
  return expr.replaceAll('$run_id', v.runId).replaceAll('$__rate_interval', v.rateInterval);
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
}

export function alertRules(): AlertRule[] {
  const file = parse(readFileSync(fileURLToPath(new URL('alerts.yaml', CHART_FILES)), 'utf8')) as {
    groups: { rules: AlertRule[] }[];
  };
  return file.groups.flatMap((g) => g.rules);
}
