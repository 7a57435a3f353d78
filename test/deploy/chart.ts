// Renders helm/lora-mpt with the helm binary the chart tests use (scripts/k8s-tools.mjs), reads
// the objects back, and runs the strict validator (scripts/k8s-validate.py) where it is installed.
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const root = fileURLToPath(new URL('../../', import.meta.url));
export const chartDir = join(root, 'helm', 'lora-mpt');
export const valuesDir = join(root, 'test', 'deploy', 'values');
const tools = execFileSync(process.execPath, [join(root, 'scripts', 'k8s-tools.mjs')], {
  encoding: 'utf8',
}).trim();
export const helmBin = join(tools, 'helm', 'helm');
export const kubectlBin = join(tools, 'kubectl', 'kubectl');

export const helm = (...args: string[]) => execFileSync(helmBin, args, { encoding: 'utf8' });

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
export interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: EnvVar[];
  envFrom?: { prefix?: string; configMapRef?: { name: string } }[];
  resources?: { limits?: Record<string, unknown>; requests?: Record<string, unknown> };
  securityContext?: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  startupProbe?: unknown;
  livenessProbe?: unknown;
  ports?: { name: string; containerPort: number }[];
}
export interface PodSpec {
  restartPolicy?: string;
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: Record<string, unknown>;
  containers: Container[];
  volumes?: { name: string; emptyDir?: unknown; persistentVolumeClaim?: { claimName: string } }[];
  priorityClassName?: string;
  imagePullSecrets?: { name: string }[];
  affinity?: unknown;
  tolerations?: unknown[];
  topologySpreadConstraints?: unknown[];
  nodeSelector?: Record<string, string>;
  runtimeClassName?: string;
  initContainers?: Container[];
}
export interface JobSpec {
  completionMode?: string;
  completions?: number;
  parallelism?: number;
  backoffLimit?: number;
  successPolicy?: { rules: { succeededCount?: number }[] };
  podReplacementPolicy?: string;
  podFailurePolicy?: {
    rules: {
      action: string;
      onExitCodes?: { containerName?: string; operator: string; values: number[] };
      onPodConditions?: { type: string; status: string }[];
    }[];
  };
  template: { metadata: PodMetadata; spec: PodSpec };
}
export interface PodMetadata {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  spec?: Record<string, unknown>;
}

export interface RenderOptions {
  set?: readonly string[];
  valuesFiles?: readonly string[];
  kubeVersion?: string;
  apiVersions?: readonly string[];
  namespace?: string;
}

function renderArgs(o: RenderOptions): string[] {
  return [
    ...(o.set ?? []).flatMap((s) => ['--set', s]),
    ...(o.valuesFiles ?? []).flatMap((f) => ['--values', join(valuesDir, f)]),
    ...(o.kubeVersion ? ['--kube-version', o.kubeVersion] : []),
    ...(o.apiVersions ?? []).flatMap((a) => ['--api-versions', a]),
    ...(o.namespace ? ['--namespace', o.namespace] : []),
  ];
}

/**
 * Renders of this process by their arguments: a render takes helm ~0.6 s and several tests render
 * the same values (the chart does not change while the tests run). Random values the chart draws
 * (NATS passwords) are then the same within one test file, as in one `helm install`.
 */
const rendered = new Map<string, string>();

export function renderText(o: RenderOptions = {}): string {
  const args = renderArgs(o);
  const key = JSON.stringify(args);
  let text = rendered.get(key);
  if (text === undefined) {
    text = helm('template', 'demo', chartDir, ...args);
    rendered.set(key, text);
  }
  return text;
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

export const render = (o: RenderOptions = {}) => parseObjects(renderText(o));

/** helm's error text when rendering fails (values.schema.json, a required value), else undefined. */
export function renderError(o: RenderOptions): string | undefined {
  const r = spawnSync(helmBin, ['template', 'demo', chartDir, ...renderArgs(o)], { encoding: 'utf8' });
  return r.status === 0 ? undefined : r.stderr;
}

export const find = (objs: K8sObject[], kind: string, name: string) => {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o)
    throw new Error(`no ${kind} ${name} in [${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}]`);
  return o;
};

/** Every pod template in the objects: Jobs, StatefulSets, and the Jobs inside a JobSet. */
export function podTemplates(objs: K8sObject[]): { owner: string; spec: PodSpec }[] {
  const out: { owner: string; spec: PodSpec }[] = [];
  for (const o of objs) {
    const spec = o.spec as {
      template?: { spec: PodSpec };
      replicatedJobs?: { name: string; template: { spec: JobSpec } }[];
    };
    if (spec?.template) out.push({ owner: `${o.kind}/${o.metadata.name}`, spec: spec.template.spec });
    for (const rj of spec?.replicatedJobs ?? [])
      out.push({ owner: `${o.kind}/${o.metadata.name}/${rj.name}`, spec: rj.template.spec.template.spec });
  }
  return out;
}

/**
 * A container's args as the kubelet hands them to the process: $(NAME) replaced from the
 * container's env and envFrom ConfigMaps (found among `objs`), `fields` standing in for downward-API
 * values. A reference to an undefined variable stays as written, as in Kubernetes.
 */
export function expandedArgs(
  c: Container,
  objs: K8sObject[],
  fields: Readonly<Record<string, string>> = {},
): string[] {
  const env = new Map<string, string>();
  for (const from of c.envFrom ?? []) {
    const cm = from.configMapRef && find(objs, 'ConfigMap', from.configMapRef.name);
    for (const [k, v] of Object.entries(cm?.data ?? {})) env.set(`${from.prefix ?? ''}${k}`, v);
  }
  for (const e of c.env ?? []) {
    const path = e.valueFrom?.fieldRef?.fieldPath;
    if (e.value !== undefined) env.set(e.name, e.value);
    else if (path !== undefined && fields[path] !== undefined) env.set(e.name, fields[path]);
  }
  return (c.args ?? []).map((a) =>
    a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => env.get(n) ?? m),
  );
}

/** The folder of the validator's virtual environment (scripts/setup-k8s-validate.sh), if installed. */
export function validatorVenv(): string | undefined {
  const venv = process.env.K8S_VALIDATE_VENV ?? '/opt/k8s-validate';
  return existsSync(join(venv, 'bin', 'python')) ? venv : undefined;
}

export interface Validation {
  ok: boolean;
  output: string;
}

/** Runs scripts/k8s-validate.py strictly over YAML text for the given Kubernetes versions. */
export function validate(venv: string, yamlText: string, versions: readonly string[]): Validation {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-k8s-validate-'));
  try {
    const file = join(dir, 'objects.yaml');
    writeFileSync(file, yamlText);
    const r = spawnSync(
      join(venv, 'bin', 'python'),
      [join(root, 'scripts', 'k8s-validate.py'), ...versions.flatMap((v) => ['-k', v]), file],
      { encoding: 'utf8' },
    );
    return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Several renders validated by one run of the validator (its model imports take seconds), each
 * render's result from the lines it printed after that render's file.
 */
export function validateMany(
  venv: string,
  texts: Readonly<Record<string, string>>,
  versions: readonly string[],
): Record<string, Validation> {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-k8s-validate-'));
  try {
    const files = Object.keys(texts).map((label, i) => {
      const file = join(dir, `render-${i}.yaml`);
      writeFileSync(file, texts[label]!);
      return { label, file };
    });
    const r = spawnSync(
      join(venv, 'bin', 'python'),
      [
        join(root, 'scripts', 'k8s-validate.py'),
        ...versions.flatMap((v) => ['-k', v]),
        ...files.map((f) => f.file),
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    const out: Record<string, Validation> = {};
    for (const { label, file } of files) {
      const lines = r.stdout.split('\n').filter((l) => l.startsWith(`${file}: `));
      const ok = lines.length > 0 && lines.every((l) => l.startsWith(`${file}: ok `));
      out[label] = { ok, output: `${lines.join('\n')}\n${r.stderr}` };
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The NOTES.txt `helm install` prints, rendered without a cluster: helm template does not render
 * NOTES, so a scratch copy of the chart renders it as a ConfigMap value.
 */
export function renderNotes(o: RenderOptions = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'lora-mpt-notes-'));
  try {
    const copy = join(dir, 'lora-mpt');
    cpSync(chartDir, copy, { recursive: true });
    cpSync(join(copy, 'templates', 'NOTES.txt'), join(copy, 'files', 'notes.txt'));
    writeFileSync(
      join(copy, 'templates', 'zz-notes.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ tpl (.Files.Get "files/notes.txt") . | quote }}\n',
    );
    const text = helm('template', 'demo', copy, '--show-only', 'templates/zz-notes.yaml', ...renderArgs(o));
    return (parseObjects(text)[0]!.data as { notes: string }).notes;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
