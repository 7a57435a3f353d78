// Turns the chart's rendered objects into what `podman kube play` (podman 4.3) runs, as close to a
// kubelet as podman gets: Jobs, the Indexed Job and the StatefulSet become the Pods their
// controllers would create, Services become network aliases, and the few things podman 4.3 reads
// differently from Kubernetes are rewritten so they mean the same. docs/deploy.md ("What the
// kube-play test stands in for") lists every rewrite; each one here says why.
import { createHash } from 'node:crypto';
import { type Container, expandedArgs, type K8sObject, type PodSpec } from './chart.ts';

type Obj = Record<string, unknown>;
type Labels = Record<string, string>;

/** One `podman kube play`: the ConfigMaps the pod reads, then the Pod, on the test's network. */
export interface PlayPod {
  readonly name: string;
  readonly component: string;
  readonly docs: readonly object[];
  /** Names of the Services whose selector matches this pod: its DNS aliases on the network. */
  readonly aliases: readonly string[];
  /** Container names as podman gives them: `<pod>-<container>`. */
  readonly containers: readonly string[];
}

/** A podman secret: `podman secret create <name> <file holding content>`. */
export interface PodmanSecret {
  readonly name: string;
  readonly content: string;
}

export interface KubePlan {
  readonly claims: readonly object[];
  readonly secrets: readonly PodmanSecret[];
  readonly pods: readonly PlayPod[];
}

export interface PlanOptions {
  /** Stands in for the chart's `nats.image` (a Docker Hub image; Docker Hub is unreachable here). */
  readonly natsImage: string;
  readonly natsCommand: readonly string[];
}

/**
 * podman 4.3 reads a `secretKeyRef` env var from a podman secret holding a JSON map of base64
 * values, but a secret volume from one holding the Secret object: each Secret is stored both ways.
 */
export const ENV_SECRET_SUFFIX = '-env';
const INDEX = 'batch.kubernetes.io/job-completion-index';
/** The one node every played pod is on (the downward API's spec.nodeName). */
export const NODE_NAME = 'kube-play-node';

interface PodDraft {
  readonly name: string;
  readonly labels: Labels;
  readonly annotations: Labels;
  readonly spec: PodSpec & Obj;
}

/** The pods the controllers of `o` would create (none for kinds that run no pod). */
function podsOf(o: K8sObject): PodDraft[] {
  const spec = o.spec as Obj | undefined;
  const template = spec?.template as { metadata?: { labels?: Labels; annotations?: Labels }; spec: PodSpec };
  const draft = (name: string, labels: Labels, annotations: Labels, extra: Obj = {}): PodDraft => ({
    name,
    labels: { ...template.metadata?.labels, ...labels },
    annotations: { ...template.metadata?.annotations, ...annotations },
    spec: { ...structuredClone(template.spec), ...extra },
  });
  if (o.kind === 'Job') {
    const job = o.metadata.name;
    if (spec?.completionMode !== 'Indexed') return [draft(`${job}-pod`, { 'job-name': job }, {})];
    // The Job controller labels and annotates each pod with its index, names its host
    // <job>-<index>, and gives every container JOB_COMPLETION_INDEX from that annotation.
    return Array.from({ length: Number(spec.completions) }, (_, i) => {
      const idx = String(i);
      const p = draft(
        `${job}-${i}`,
        { 'job-name': job, [INDEX]: idx },
        { [INDEX]: idx },
        { hostname: `${job}-${i}` },
      );
      for (const c of p.spec.containers) {
        c.env = [
          {
            name: 'JOB_COMPLETION_INDEX',
            valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${INDEX}']` } },
          },
          ...(c.env ?? []),
        ];
      }
      return p;
    });
  }
  if (o.kind === 'StatefulSet') {
    return Array.from({ length: Number(spec?.replicas ?? 1) }, (_, i) => {
      const name = `${o.metadata.name}-${i}`;
      return draft(
        name,
        { 'statefulset.kubernetes.io/pod-name': name, 'apps.kubernetes.io/pod-index': String(i) },
        {},
        { hostname: name, subdomain: spec?.serviceName },
      );
    });
  }
  if (o.kind === 'Pod') {
    const p = o as unknown as { metadata: { labels?: Labels; annotations?: Labels }; spec: PodSpec & Obj };
    return [
      {
        name: o.metadata.name,
        labels: { ...p.metadata.labels },
        annotations: { ...p.metadata.annotations },
        spec: structuredClone(p.spec),
      },
    ];
  }
  if (o.kind === 'JobSet') throw new Error('kube-play: render without the JobSet (jobSet.enabled=false)');
  return [];
}

/** Downward-API values of a pod, as expandedArgs takes them. */
function fieldsOf(p: PodDraft): Record<string, string> {
  const f: Record<string, string> = { 'metadata.name': p.name, 'spec.nodeName': NODE_NAME };
  for (const [k, v] of Object.entries(p.labels)) f[`metadata.labels['${k}']`] = v;
  for (const [k, v] of Object.entries(p.annotations)) f[`metadata.annotations['${k}']`] = v;
  return f;
}

function rewriteContainer(c: Container & Obj, p: PodDraft, objs: K8sObject[], o: PlanOptions): void {
  // The kubelet expands $(VAR) in args from the container's environment; podman 4.3 does not.
  const args = expandedArgs(c, objs, fieldsOf(p));
  const unresolved = args.find((a) => /\$\([A-Za-z_]/.test(a));
  if (unresolved) throw new Error(`kube-play: pod ${p.name} container ${c.name}: unresolved ${unresolved}`);
  if (c.args) c.args = args;
  // podman 4.3 ignores envFrom's prefix: each key becomes its own configMapKeyRef (podman reads
  // the value from the ConfigMap in the same file), before `env`, which wins as in Kubernetes.
  const fromConfigMaps = (c.envFrom ?? []).flatMap((from) => {
    const name = from.configMapRef?.name;
    if (!name)
      throw new Error(`kube-play: pod ${p.name} container ${c.name}: envFrom other than a ConfigMap`);
    const cm = objs.find((x) => x.kind === 'ConfigMap' && x.metadata.name === name);
    return Object.keys(cm?.data ?? {}).map((key) => ({
      name: `${from.prefix ?? ''}${key}`,
      valueFrom: { configMapKeyRef: { name, key } },
    }));
  });
  delete c.envFrom;
  const env = [...fromConfigMaps, ...(c.env ?? [])] as (Obj & { valueFrom?: Obj })[];
  for (const e of env) {
    const ref = e.valueFrom?.secretKeyRef as { name: string } | undefined;
    if (ref) ref.name = `${ref.name}${ENV_SECRET_SUFFIX}`;
    // The kubelet fills spec.nodeName from the node it schedules on; podman has no node, and every
    // pod here runs on this one host: the same literal name for all.
    if ((e.valueFrom?.fieldRef as { fieldPath?: string } | undefined)?.fieldPath === 'spec.nodeName') {
      delete e.valueFrom;
      e.value = NODE_NAME;
    }
  }
  c.env = env as unknown as Container['env'];
  // podman 4.3 publishes every containerPort on the host (hostPort = containerPort), where in
  // Kubernetes it opens nothing: the ports go, and probes name their port by number instead.
  const ports = new Map((c.ports ?? []).map((x) => [x.name, x.containerPort]));
  for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
    const get = (c[probe] as { httpGet?: { port: string | number } } | undefined)?.httpGet;
    if (get && typeof get.port === 'string') get.port = ports.get(get.port) ?? get.port;
  }
  delete c.ports;
  if (p.labels['app.kubernetes.io/component'] === 'nats') {
    c.image = o.natsImage;
    c.command = [...o.natsCommand];
  }
}

/**
 * Secret volumes as podman 4.3 can mount them. It panics on an unset `optional` (Kubernetes'
 * default is false), and ignores `items`, mounting every key under its own name: a volume with
 * items gets a podman secret of its own holding just those keys under their paths.
 */
function rewriteVolumes(p: PodDraft, objs: K8sObject[]): PodmanSecret[] {
  const made: PodmanSecret[] = [];
  for (const v of (p.spec.volumes ?? []) as (Obj & { secret?: Obj })[]) {
    if (!v.secret) continue;
    v.secret.optional ??= false;
    const items = v.secret.items as { key: string; path: string }[] | undefined;
    if (!items?.length) continue;
    const from = String(v.secret.secretName);
    const data = objs.find((x) => x.kind === 'Secret' && x.metadata.name === from)?.data ?? {};
    const picked = Object.fromEntries(items.map((i) => [i.path, data[i.key] ?? '']));
    const name = `${from}-items-${createHash('sha256').update(JSON.stringify(items)).digest('hex').slice(0, 8)}`;
    made.push(volumeSecret(name, picked));
    v.secret.secretName = name;
    delete v.secret.items;
  }
  return made;
}

const matches = (selector: Labels, labels: Labels) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);

/** Services as aliases: a client reaches the pod's IP on the Service's port, so the two must agree. */
function aliasesOf(p: PodDraft, services: K8sObject[]): string[] {
  const out: string[] = [];
  for (const s of services) {
    const spec = s.spec as { selector?: Labels; ports?: { port: number; targetPort?: string | number }[] };
    if (!spec.selector || !matches(spec.selector, p.labels)) continue;
    const ports = p.spec.containers.flatMap((c) => c.ports ?? []);
    for (const port of spec.ports ?? []) {
      const target = port.targetPort ?? port.port;
      const cp = ports.find((x) => x.name === target || x.containerPort === target);
      if (cp?.containerPort !== port.port)
        throw new Error(
          `kube-play: Service ${s.metadata.name} port ${port.port} -> ${String(target)} on pod ${p.name}`,
        );
    }
    out.push(s.metadata.name);
  }
  return out;
}

/** A secret volume's podman secret: podman 4.3 writes `data` values as they are, undecoded. */
function volumeSecret(name: string, data: Readonly<Record<string, string>>): PodmanSecret {
  const decoded = Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
  );
  return {
    name,
    content: JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name }, data: decoded }),
  };
}

function secretsOf(s: K8sObject): PodmanSecret[] {
  const data = s.data ?? {};
  return [
    volumeSecret(s.metadata.name, data),
    { name: `${s.metadata.name}${ENV_SECRET_SUFFIX}`, content: JSON.stringify(data) },
  ];
}

/** What podman runs for the rendered `objs`. */
export function kubePlan(objs: K8sObject[], o: PlanOptions): KubePlan {
  const services = objs.filter((x) => x.kind === 'Service');
  const configMaps = objs.filter((x) => x.kind === 'ConfigMap');
  const itemSecrets = new Map<string, PodmanSecret>();
  const pods = objs.flatMap(podsOf).map((p): PlayPod => {
    const aliases = aliasesOf(p, services);
    const used = new Set<string>();
    for (const c of [...p.spec.containers, ...(p.spec.initContainers ?? [])] as (Container & Obj)[]) {
      for (const from of c.envFrom ?? []) if (from.configMapRef) used.add(from.configMapRef.name);
      rewriteContainer(c, p, objs, o);
      for (const e of c.env ?? []) {
        const ref = (e.valueFrom as { configMapKeyRef?: { name: string } } | undefined)?.configMapKeyRef;
        if (ref) used.add(ref.name);
      }
    }
    for (const v of (p.spec.volumes ?? []) as { configMap?: { name: string } }[])
      if (v.configMap) used.add(v.configMap.name);
    for (const made of rewriteVolumes(p, objs)) itemSecrets.set(made.name, made);
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, labels: p.labels, annotations: p.annotations },
      spec: p.spec,
    };
    return {
      name: p.name,
      component: p.labels['app.kubernetes.io/component'] ?? '',
      docs: [...configMaps.filter((c) => used.has(c.metadata.name)), pod],
      aliases,
      containers: p.spec.containers.map((c) => `${p.name}-${c.name}`),
    };
  });
  return {
    claims: objs.filter((x) => x.kind === 'PersistentVolumeClaim'),
    secrets: [...objs.filter((x) => x.kind === 'Secret').flatMap(secretsOf), ...itemSecrets.values()],
    pods,
  };
}
