/**
 * An in-process fake Kubernetes API server for tests, for the real `@kubernetes/client-node` to talk
 * to over plain HTTP. It models the parts of kube-apiserver that list/watch clients depend on:
 *
 * - One global resourceVersion counter (like etcd's revision), bumped by every write; a delete is a
 *   write too, so the DELETED event carries a new resourceVersion.
 * - Lists return `metadata.resourceVersion` (the current global RV). Items of built-in kinds have NO
 *   `kind`/`apiVersion` (the real server omits them on typed list items, so a client must fill them
 *   in); items of kinds added by `registerResource` keep them, as custom resources do.
 * - Watches stream newline-delimited JSON events after the given RV, replayed from a kept history;
 *   without an RV (or with "0") they start with ADDED events for the current objects. With a label or
 *   field selector, an update that makes an object stop matching is sent as DELETED (the previous
 *   content with the new RV) and one that makes it start matching as ADDED, as the watch cache does.
 *   A watch from an RV older than the last `compact()` gets "too old resource version": by default
 *   an ERROR event (code 410, reason Expired) on a 200 stream, which is then closed, as the real
 *   server does; or with `expiredAs: 'status'` an HTTP 410 Status.
 * - An update that changes nothing is a no-op (no new RV, no event), as in the real server.
 *
 * Not modelled: PATCH, subresources (status, scale), deletecollection, finalizers and graceful
 * deletion, namespace existence checks and cascading deletes, admission and defaulting,
 * pagination (`limit` is ignored and the whole list returned, as the API allows), sendInitialEvents.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    ownerReferences?: {
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
    }[];
    uid?: string;
    resourceVersion?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** A kind the server serves. `group` is '' for the core group (`/api/v1`). */
export interface ResourceDefinition {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  singular?: string;
  shortNames?: string[];
  /** Field-selector labels beyond metadata.name and metadata.namespace (dotted paths). */
  fields?: string[];
}

export interface KubeServerOptions {
  /** When set, every request needs `Authorization: Bearer <token>`, else 401. */
  token?: string;
  /** How a watch from a compacted RV fails: an ERROR event (the real server) or an HTTP 410. */
  expiredAs?: 'event' | 'status';
  /** The user named in 403 messages. */
  user?: string;
}

export interface KubeconfigOptions {
  clusters: { name: string; server: string; skipTLSVerify: boolean }[];
  users: { name: string; token?: string }[];
  contexts: { name: string; cluster: string; user: string }[];
  currentContext: string;
}

export interface RequestRecord {
  readonly method: string;
  /** The path with its query string, as sent. */
  readonly path: string;
  /** The HTTP status answered; 0 while the request is still being read. */
  status: number;
}

export interface KubeStatus {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: { name?: string; group?: string; kind?: string };
  code: number;
}

/** A failure with the Status the real server would answer; thrown by the in-process methods too. */
export class KubeStatusError extends Error {
  constructor(readonly status: KubeStatus) {
    super(status.message);
  }
  get code(): number {
    return this.status.code;
  }
}

const REASONS: Record<number, string> = {
  ...{ 400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound' },
  ...{ 405: 'MethodNotAllowed', 409: 'Conflict', 410: 'Expired', 422: 'Invalid' },
  ...{ 429: 'TooManyRequests', 500: 'InternalError', 503: 'ServiceUnavailable', 504: 'Timeout' },
};

function statusOf(code: number, message: string, details?: KubeStatus['details'], reason?: string) {
  const status: KubeStatus = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason: reason ?? REASONS[code] ?? 'InternalError',
    code,
  };
  if (details) status.details = details;
  return status;
}

function fail(code: number, message: string, details?: KubeStatus['details'], reason?: string) {
  return new KubeStatusError(statusOf(code, message, details, reason));
}

const NOT_ALLOWED = 'the server does not allow this method on the requested resource';

function kind(
  group: string,
  kind: string,
  plural: string,
  namespaced: boolean,
  shortName: string,
  fields: string[] = [],
): ResourceDefinition {
  return { group, version: 'v1', kind, plural, namespaced, shortNames: [shortName], fields };
}

const BUILT_IN: ResourceDefinition[] = [
  kind('', 'Namespace', 'namespaces', false, 'ns', ['status.phase']),
  kind('', 'Pod', 'pods', true, 'po', ['spec.nodeName', 'spec.serviceAccountName', 'status.phase']),
  kind('', 'ConfigMap', 'configmaps', true, 'cm'),
  kind('', 'Service', 'services', true, 'svc'),
  kind('', 'Event', 'events', true, 'ev', [
    ...['apiVersion', 'kind', 'name', 'namespace', 'uid'].map((f) => `involvedObject.${f}`),
    ...['reason', 'type'],
  ]),
  kind('apps', 'Deployment', 'deployments', true, 'deploy'),
];

const VERBS = ['create', 'delete', 'get', 'list', 'update', 'watch'];

interface Resource {
  readonly def: ResourceDefinition;
  readonly apiVersion: string;
  readonly singular: string;
  readonly builtIn: boolean;
  readonly objects: Map<string, KubeObject>;
}

// ---- label and field selectors -------------------------------------------------------------

type Requirement = {
  key: string;
  op: 'in' | 'notin' | 'exists' | 'absent' | 'gt' | 'lt';
  values: string[];
};

const KEY = String.raw`(?:[A-Za-z0-9.-]+\/)?[A-Za-z0-9_.-]+`;
const VALUE = String.raw`[A-Za-z0-9_.-]*`;
const SET_RE = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^()]*)\)$`);
const OP_RE = new RegExp(String.raw`^(${KEY})\s*(==|!=|=|>|<)\s*(${VALUE})$`);
const EXISTS_RE = new RegExp(String.raw`^(!?)\s*(${KEY})$`);

/** Splits at commas outside parentheses: `a in (x,y),b` → [`a in (x,y)`, `b`]. */
function splitRequirements(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth--;
    else if (text[i] === ',' && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

export function parseLabelSelector(text: string): Requirement[] {
  return splitRequirements(text).map((part): Requirement => {
    let m = SET_RE.exec(part);
    if (m) {
      const values = m[3]!.split(',').map((v) => v.trim());
      return { key: m[1]!, op: m[2] as 'in' | 'notin', values };
    }
    m = OP_RE.exec(part);
    if (m) {
      const ops = { '=': 'in', '==': 'in', '!=': 'notin', '>': 'gt', '<': 'lt' } as const;
      return { key: m[1]!, op: ops[m[2] as keyof typeof ops], values: [m[3]!] };
    }
    m = EXISTS_RE.exec(part);
    if (m) return { key: m[2]!, op: m[1] ? 'absent' : 'exists', values: [] };
    throw fail(400, `unable to parse requirement: found '${part}'`);
  });
}

/** As labels.Selector.Matches: `!=` and `notin` also match objects without the label. */
export function matchesLabels(
  selector: readonly Requirement[],
  labels: Record<string, string> = {},
): boolean {
  return selector.every(({ key, op, values }) => {
    const value = Object.hasOwn(labels, key) ? labels[key] : undefined;
    switch (op) {
      case 'in':
        return value !== undefined && values.includes(value);
      case 'notin':
        return value === undefined || !values.includes(value);
      case 'exists':
        return value !== undefined;
      case 'absent':
        return value === undefined;
      case 'gt':
      case 'lt': {
        const n = Number(value);
        const limit = Number(values[0]);
        if (value === undefined || !Number.isInteger(n)) return false;
        return op === 'gt' ? n > limit : n < limit;
      }
    }
  });
}

type FieldRequirement = { path: string; equal: boolean; value: string };

function parseFieldSelector(text: string, resource: Resource): FieldRequirement[] {
  const allowed = ['metadata.name', 'metadata.namespace', ...(resource.def.fields ?? [])];
  return splitRequirements(text).map((part) => {
    const m = /^([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)$/.exec(part);
    if (!m) throw fail(400, `invalid field selector: '${part}'`);
    if (!allowed.includes(m[1]!)) {
      throw fail(400, `field label not supported: ${m[1]}`);
    }
    return { path: m[1]!, equal: m[2] !== '!=', value: m[3]! };
  });
}

function fieldValue(object: KubeObject, path: string): string {
  let value: unknown = object;
  for (const part of path.split('.')) {
    value = value !== null && typeof value === 'object' ? (value as never)[part] : undefined;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeof value === 'string' ? value : '';
}

// ---- helpers ---------------------------------------------------------------------------------

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return Array.from({ length: 5 }, () => alphabet[Math.floor(Math.random() * 27)]).join('');
}

function keyOf(object: KubeObject): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

/** Everything of an object but metadata and status: what metadata.generation counts. */
function specPart(object: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = object;
  return JSON.stringify(rest);
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One write, kept for replay: the object after it and, for updates and deletes, before it. */
interface Change {
  readonly rv: number;
  readonly type: EventType;
  readonly resource: Resource;
  readonly object: KubeObject;
  readonly previous?: KubeObject;
}

/** What a list or watch selects: its namespace (none: all) and selectors. */
interface Filter {
  readonly namespace: string | undefined;
  readonly labels: Requirement[];
  readonly fields: FieldRequirement[];
}

interface Watcher extends Filter {
  readonly res: ServerResponse;
  readonly resource: Resource;
  readonly bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

interface Waiter<T> {
  test(): T | undefined;
  resolve(value: T): void;
}

/** A parsed resource URL: `/api/v1[/namespaces/{ns}]/{plural}[/{name}]`, or under `/apis/{g}/{v}`. */
interface Target {
  resource: Resource;
  namespace?: string;
  name?: string;
}

export class KubeServer {
  readonly token: string | undefined;
  /** The form of "too old resource version"; may be changed while running. */
  expiredAs: 'event' | 'status';
  private readonly user: string;
  private readonly server: Server;
  private port = 0;
  private readonly kinds: Resource[] = [];
  private rv = 0;
  private compactedRv = 0;
  private history: Change[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly log: RequestRecord[] = [];
  private waiters: Waiter<unknown>[] = [];
  private failures: {
    remaining: number;
    status: number;
    match?: (method: string, path: string) => boolean;
  }[] = [];
  private forbidden: { plural: string; namespace?: string }[] = [];

  private constructor(options: KubeServerOptions) {
    this.token = options.token;
    this.expiredAs = options.expiredAs ?? 'event';
    this.user = options.user ?? 'system:serviceaccount:default:test';
    for (const def of BUILT_IN) this.addKind(def, true);
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) this.send(res, statusOf(500, String(error)));
        else res.destroy();
      });
    });
  }

  static async start(options: KubeServerOptions = {}): Promise<KubeServer> {
    const kube = new KubeServer(options);
    await new Promise<void>((resolve, reject) => {
      kube.server.once('error', reject);
      kube.server.listen(0, '127.0.0.1', () => resolve());
    });
    kube.port = (kube.server.address() as AddressInfo).port;
    return kube;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Options for `kc.loadFromOptions`; `token` overrides the server's, `null` sends none. */
  kubeconfigOptions(token?: string | null): KubeconfigOptions {
    const bearer = token === undefined ? this.token : (token ?? undefined);
    return {
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [bearer === undefined ? { name: 'test' } : { name: 'test', token: bearer }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'test' }],
      currentContext: 'fake',
    };
  }

  /** The same as a kubeconfig file (JSON, which is valid YAML). */
  kubeconfigText(token?: string | null): string {
    const options = this.kubeconfigOptions(token);
    return JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [
        { name: 'test', user: options.users[0]!.token ? { token: options.users[0]!.token } : {} },
      ],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'test' } }],
      'current-context': 'fake',
    });
  }

  /** Serves another kind, e.g. a custom resource; it appears in discovery. */
  registerResource(def: ResourceDefinition): void {
    this.addKind(def, false);
  }

  get resourceVersion(): string {
    return String(this.rv);
  }

  get requests(): readonly RequestRecord[] {
    return this.log;
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  // ---- in-process store access --------------------------------------------------------------

  create(object: KubeObject): KubeObject {
    return this.insert(this.kindOf(object.apiVersion, object.kind), object);
  }

  update(object: KubeObject): KubeObject {
    return this.replace(this.kindOf(object.apiVersion, object.kind), object);
  }

  remove(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject {
    const resource = this.kindOf(apiVersion, kind);
    return this.delete(resource, name, this.namespaceFor(resource, namespace));
  }

  get(apiVersion: string, kind: string, name: string, namespace?: string): KubeObject | undefined {
    const resource = this.kindOf(apiVersion, kind);
    const found = resource.objects.get(`${this.namespaceFor(resource, namespace) ?? ''}/${name}`);
    return found && clone(found);
  }

  // ---- scripted behaviour -------------------------------------------------------------------

  /** Forgets the history up to now: a watch from an older RV is "too old" (410 Expired). */
  compact(): void {
    this.history = [];
    this.compactedRv = this.rv;
  }

  /** Sends a BOOKMARK with the current RV to every watch that allowed bookmarks. */
  bookmark(): void {
    for (const w of this.watchers) {
      if (!w.bookmarks) continue;
      const object = {
        kind: w.resource.def.kind,
        apiVersion: w.resource.apiVersion,
        metadata: { resourceVersion: this.resourceVersion },
      };
      w.res.write(`${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
    }
  }

  /** Ends every open watch stream normally. */
  endWatches(): void {
    for (const w of [...this.watchers]) this.endWatch(w);
  }

  /**
   * Fails the next `count` requests matching `match(method, pathWithQuery)` (all when omitted)
   * with `status` and a Status body, before authentication.
   */
  failNext(count: number, status: number, match?: (method: string, path: string) => boolean): void {
    this.failures.push(match ? { remaining: count, status, match } : { remaining: count, status });
  }

  /**
   * Denies every request on `plural` (403, as RBAC words it): in `namespace` only, or everywhere.
   * A request across all namespaces is denied by any rule for the plural.
   */
  forbid(plural: string, namespace?: string): void {
    this.forbidden.push(namespace === undefined ? { plural } : { plural, namespace });
  }

  /** Undoes `forbid` with the same arguments. */
  allow(plural: string, namespace?: string): void {
    this.forbidden = this.forbidden.filter((f) => f.plural !== plural || f.namespace !== namespace);
  }

  /** Resolves when at least `count` watch streams are open. */
  untilWatches(count: number, timeoutMs = 5000): Promise<void> {
    return this.until(
      () => (this.watchers.size >= count ? true : undefined),
      timeoutMs,
      () => `${count} open watches (have ${this.watchers.size})`,
    ).then(() => undefined);
  }

  /** Resolves with the first answered request at index >= `since` that `match` accepts. */
  untilRequest(
    match: (request: RequestRecord) => boolean,
    options: { since?: number; timeoutMs?: number } = {},
  ): Promise<RequestRecord> {
    const since = options.since ?? 0;
    return this.until(
      () => this.log.slice(since).find((r) => r.status !== 0 && match(r)),
      options.timeoutMs ?? 5000,
      () => `a matching request since #${since}: ${JSON.stringify(this.log.slice(since))}`,
    );
  }

  async close(): Promise<void> {
    this.endWatches();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  // ---- store --------------------------------------------------------------------------------

  private addKind(def: ResourceDefinition, builtIn: boolean): void {
    const apiVersion = def.group ? `${def.group}/${def.version}` : def.version;
    if (this.kinds.some((k) => k.apiVersion === apiVersion && k.def.plural === def.plural)) {
      throw new Error(`${def.plural}.${apiVersion} is already served`);
    }
    const singular = def.singular ?? def.kind.toLowerCase();
    this.kinds.push({ def: { ...def }, apiVersion, singular, builtIn, objects: new Map() });
  }

  private kindOf(apiVersion: string, kind: string): Resource {
    const found = this.kinds.find((k) => k.apiVersion === apiVersion && k.def.kind === kind);
    if (!found) throw new Error(`KubeServer does not serve ${kind} in ${apiVersion}`);
    return found;
  }

  private namespaceFor(resource: Resource, namespace: string | undefined): string | undefined {
    return resource.def.namespaced ? namespace || 'default' : undefined;
  }

  /** An error about one object, worded as the real server does: `pods "x" not found`. */
  /** An error about one object, worded as the real server does: `pods "x" not found`. */
  private objectError(
    code: number,
    reason: string,
    resource: Resource,
    name: string,
    text: string,
  ) {
    const { group, plural } = resource.def;
    const subject = `${plural}${group ? '.' + group : ''} "${name}"`;
    const message = text.startsWith(':')
      ? `Operation cannot be fulfilled on ${subject}${text}`
      : `${subject} ${text}`;
    return fail(code, message, { name, group, kind: plural }, reason);
  }

  private notFound(resource: Resource, name: string) {
    return this.objectError(404, 'NotFound', resource, name, 'not found');
  }

  /** A copy of an object to store: kind and apiVersion set, namespace defaulted or removed. */
  private normalize(resource: Resource, input: KubeObject): KubeObject {
    const object = clone(input);
    object.apiVersion = resource.apiVersion;
    object.kind = resource.def.kind;
    object.metadata ??= { name: '' };
    const namespace = this.namespaceFor(resource, object.metadata.namespace);
    if (namespace === undefined) delete object.metadata.namespace;
    else object.metadata.namespace = namespace;
    return object;
  }

  private insert(resource: Resource, input: KubeObject): KubeObject {
    const object = this.normalize(resource, input);
    const meta = object.metadata;
    if (!meta.name && typeof meta.generateName === 'string' && meta.generateName) {
      meta.name = meta.generateName + randomSuffix();
    }
    if (!meta.name) {
      throw fail(422, `${object.kind} "" is invalid: metadata.name: Required value`);
    }
    if (resource.objects.has(keyOf(object))) {
      throw this.objectError(409, 'AlreadyExists', resource, meta.name, 'already exists');
    }
    meta.uid = randomUUID();
    meta.creationTimestamp = timestamp();
    meta.generation = 1;
    meta.resourceVersion = String(++this.rv);
    resource.objects.set(keyOf(object), object);
    this.record({ rv: this.rv, type: 'ADDED', resource, object });
    return clone(object);
  }

  private replace(resource: Resource, input: KubeObject): KubeObject {
    const object = this.normalize(resource, input);
    const previous = resource.objects.get(keyOf(object));
    if (!previous) throw this.notFound(resource, object.metadata.name);
    const meta = object.metadata;
    if (meta.resourceVersion && meta.resourceVersion !== previous.metadata.resourceVersion) {
      const text =
        ': the object has been modified; please apply your changes to the latest version and try again';
      throw this.objectError(409, 'Conflict', resource, meta.name, text);
    }
    // Fields the server owns are kept from the stored object.
    for (const field of ['uid', 'creationTimestamp', 'generation', 'resourceVersion']) {
      meta[field] = previous.metadata[field];
    }
    if (JSON.stringify(object) === JSON.stringify(previous)) return clone(previous);
    if (specPart(object) !== specPart(previous)) meta.generation = Number(meta.generation) + 1;
    meta.resourceVersion = String(++this.rv);
    resource.objects.set(keyOf(object), object);
    this.record({ rv: this.rv, type: 'MODIFIED', resource, object, previous });
    return clone(object);
  }

  private delete(resource: Resource, name: string, namespace: string | undefined): KubeObject {
    const key = `${namespace ?? ''}/${name}`;
    const previous = resource.objects.get(key);
    if (!previous) throw this.notFound(resource, name);
    resource.objects.delete(key);
    const object = clone(previous);
    object.metadata.resourceVersion = String(++this.rv);
    this.record({ rv: this.rv, type: 'DELETED', resource, object, previous });
    return clone(object);
  }

  private record(change: Change): void {
    this.history.push(change);
    for (const w of this.watchers) {
      if (w.resource === change.resource) this.deliver(w, change);
    }
  }

  // ---- watch --------------------------------------------------------------------------------

  private matches(w: Filter, object: KubeObject): boolean {
    if (w.namespace !== undefined && object.metadata.namespace !== w.namespace) return false;
    if (!matchesLabels(w.labels, object.metadata.labels)) return false;
    return w.fields.every((f) => (fieldValue(object, f.path) === f.value) === f.equal);
  }

  /** The event a watcher sees for a change, as the watch cache's filtering decides it. */
  private deliver(w: Watcher, change: Change): void {
    const now = change.type !== 'DELETED' && this.matches(w, change.object);
    const before = change.previous !== undefined && this.matches(w, change.previous);
    let event: { type: EventType; object: KubeObject } | undefined;
    if (now) event = { type: before ? 'MODIFIED' : 'ADDED', object: change.object };
    else if (before) {
      const object = clone(change.previous);
      object.metadata.resourceVersion = String(change.rv);
      event = { type: 'DELETED', object };
    }
    if (event) w.res.write(`${JSON.stringify(event)}\n`);
  }

  private watch(res: ServerResponse, target: Target, query: URLSearchParams): void {
    const { resource, namespace } = target;
    const labels = parseLabelSelector(query.get('labelSelector') ?? '');
    const fields = parseFieldSelector(query.get('fieldSelector') ?? '', resource);
    const rvText = query.get('resourceVersion') ?? '';
    const fromRv = rvText === '' || rvText === '0' ? undefined : Number(rvText);
    if (fromRv !== undefined && !(Number.isInteger(fromRv) && fromRv >= 0)) {
      throw fail(400, `invalid resource version: ${rvText}`);
    }
    const expired = fromRv !== undefined && fromRv < this.compactedRv;
    const tooOld = `too old resource version: ${fromRv} (${this.compactedRv})`;
    if (expired && this.expiredAs === 'status') throw fail(410, tooOld);
    this.setStatus(res, 200);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
    });
    res.flushHeaders();
    if (expired) {
      const object = statusOf(410, tooOld);
      res.end(`${JSON.stringify({ type: 'ERROR', object })}\n`);
      return;
    }
    const w: Watcher = {
      res,
      resource,
      namespace,
      labels,
      fields,
      bookmarks: query.get('allowWatchBookmarks') === 'true',
    };
    if (fromRv === undefined) {
      for (const object of this.sorted(resource)) {
        if (this.matches(w, object)) res.write(`${JSON.stringify({ type: 'ADDED', object })}\n`);
      }
    } else {
      for (const change of this.history) {
        if (change.rv > fromRv && change.resource === resource) this.deliver(w, change);
      }
    }
    const timeout = Number(query.get('timeoutSeconds') ?? '0');
    if (timeout > 0) w.timer = setTimeout(() => this.endWatch(w), timeout * 1000);
    res.on('close', () => {
      clearTimeout(w.timer);
      this.watchers.delete(w);
    });
    this.watchers.add(w);
    this.wake();
  }

  private endWatch(w: Watcher): void {
    clearTimeout(w.timer);
    if (this.watchers.delete(w)) w.res.end();
  }

  private sorted(resource: Resource): KubeObject[] {
    return [...resource.objects.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, object]) => object);
  }

  // ---- waiting ------------------------------------------------------------------------------

  private until<T>(test: () => T | undefined, timeoutMs: number, what: () => string): Promise<T> {
    const ready = test();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = {
        test,
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`KubeServer: timed out after ${timeoutMs} ms waiting for ${what()}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) {
      const value = waiter.test();
      if (value !== undefined) {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        waiter.resolve(value);
      }
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private readonly records = new WeakMap<ServerResponse, RequestRecord>();

  private setStatus(res: ServerResponse, status: number): void {
    const record = this.records.get(res);
    if (record) record.status = status;
    this.wake();
  }

  private send(res: ServerResponse, body: unknown, status?: number): void {
    const code = status ?? (body as KubeStatus).code;
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (code === 429 || code === 503) headers['Retry-After'] = '1';
    res.writeHead(code, headers);
    res.end(JSON.stringify(body));
    this.setStatus(res, code);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const record: RequestRecord = { method, path, status: 0 };
    this.log.push(record);
    this.records.set(res, record);
    try {
      const body = await this.route(req, res, method, path);
      if (body !== undefined) this.send(res, body.value, body.status);
    } catch (error) {
      if (!(error instanceof KubeStatusError)) throw error;
      this.send(res, error.status);
    }
  }

  private async route(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
  ): Promise<{ value: unknown; status: number } | undefined> {
    const ok = (value: unknown, status = 200) => ({ value, status });
    const failure = this.failures.find((f) => f.remaining > 0 && (f.match?.(method, path) ?? true));
    if (failure) {
      failure.remaining--;
      this.failures = this.failures.filter((f) => f.remaining > 0);
      throw fail(failure.status, `injected failure: HTTP ${failure.status}`);
    }
    if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) {
      throw fail(401, 'Unauthorized');
    }
    const url = new URL(path, 'http://localhost');
    const segments = url.pathname.split('/').filter(Boolean).map(decodeURIComponent);
    const discovery = this.discovery(segments);
    if (discovery !== undefined && method !== 'GET') throw fail(405, NOT_ALLOWED);
    if (discovery !== undefined) return ok(discovery);
    const target = this.parseTarget(segments);
    const { resource, namespace, name } = target;
    const query = url.searchParams;
    const watching = ['true', '1'].includes(query.get('watch') ?? '');
    const writes: Record<string, string> = { POST: 'create', PUT: 'update', DELETE: 'delete' };
    const verb = method !== 'GET' ? writes[method] : name ? 'get' : watching ? 'watch' : 'list';
    const allNamespaces = resource.def.namespaced && namespace === undefined;
    const misdirected =
      method === 'POST' ? name !== undefined || allNamespaces : method !== 'GET' && !name;
    if (!verb || misdirected) {
      throw fail(405, NOT_ALLOWED);
    }
    this.authorize(verb, target);
    if (verb === 'get') {
      const found = resource.objects.get(`${namespace ?? ''}/${name}`);
      if (!found) throw this.notFound(resource, name!);
      return ok(found);
    }
    if (verb === 'list') return ok(this.list(target, query));
    if (verb === 'watch') {
      this.watch(res, target, query);
      return undefined;
    }
    if (verb === 'delete') return ok(this.delete(resource, name!, namespace));
    const object = await readJson(req);
    const meta = (object.metadata ??= { name: '' });
    // What the body says must agree with the URL (the real server words each case its own way).
    const checks = [
      ['apiVersion', object.apiVersion, resource.apiVersion],
      ['kind', object.kind, resource.def.kind],
      ['namespace', meta.namespace, namespace],
      ['name', meta.name, name],
    ];
    for (const [field, given, expected] of checks) {
      if (given && expected !== undefined && given !== expected) {
        throw fail(
          400,
          `the ${field} of the provided object (${given}) does not match the request (${expected})`,
        );
      }
    }
    meta.namespace = namespace;
    meta.name ||= name ?? '';
    return verb === 'create'
      ? ok(this.insert(resource, object), 201)
      : ok(this.replace(resource, object));
  }

  private discovery(segments: string[]): unknown {
    const resources = (apiVersion: string) => {
      const served = this.kinds.filter((k) => k.apiVersion === apiVersion);
      if (served.length === 0) return undefined;
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: apiVersion,
        resources: served.map((k) => ({
          name: k.def.plural,
          singularName: k.singular,
          namespaced: k.def.namespaced,
          kind: k.def.kind,
          verbs: VERBS,
          ...(k.def.shortNames ? { shortNames: k.def.shortNames } : {}),
        })),
      };
    };
    const groups = () => {
      const byName = new Map<string, { groupVersion: string; version: string }[]>();
      for (const k of this.kinds.filter((k) => k.def.group !== '')) {
        const versions = byName.get(k.def.group) ?? [];
        if (!versions.some((v) => v.version === k.def.version)) {
          versions.push({ groupVersion: k.apiVersion, version: k.def.version });
        }
        byName.set(k.def.group, versions);
      }
      return [...byName].map(([name, versions]) => ({
        name,
        versions,
        preferredVersion: versions[0],
      }));
    };
    const [root, a, b, ...rest] = segments;
    if (root === 'api' && a === undefined) {
      const serverAddress = `127.0.0.1:${this.port}`;
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
      };
    }
    if (root === 'api' && a !== undefined && b === undefined) return resources(a);
    if (root !== 'apis' || rest.length > 0) return undefined;
    if (a === undefined) return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups() };
    if (b === undefined) {
      const group = groups().find((g) => g.name === a);
      return group && { kind: 'APIGroup', apiVersion: 'v1', ...group };
    }
    return resources(`${a}/${b}`);
  }

  private parseTarget(segments: string[]): Target {
    const notServed = () => fail(404, 'the server could not find the requested resource');
    let apiVersion: string;
    let rest: string[];
    if (segments[0] === 'api' && segments.length >= 2) {
      apiVersion = segments[1]!;
      rest = segments.slice(2);
    } else if (segments[0] === 'apis' && segments.length >= 3) {
      apiVersion = `${segments[1]}/${segments[2]}`;
      rest = segments.slice(3);
    } else throw notServed();
    const served = (plural: string | undefined) =>
      this.kinds.find((k) => k.apiVersion === apiVersion && k.def.plural === plural);
    // `namespaces/{ns}/{plural}[/{name}]` is namespaced; anything else is `{plural}[/{name}]`.
    if (rest[0] === 'namespaces' && rest.length >= 3 && rest.length <= 4) {
      const resource = served(rest[2]);
      if (!resource?.def.namespaced) throw notServed();
      return { resource, namespace: rest[1]!, ...(rest[3] === undefined ? {} : { name: rest[3] }) };
    }
    const resource = served(rest[0]);
    if (!resource || rest.length > 2 || (resource.def.namespaced && rest.length === 2)) {
      throw notServed();
    }
    return { resource, ...(rest[1] === undefined ? {} : { name: rest[1] }) };
  }

  private authorize(verb: string, target: Target): void {
    const { resource, namespace, name } = target;
    const { plural, group } = resource.def;
    const denied = this.forbidden.some(
      (f) =>
        f.plural === plural &&
        (f.namespace === undefined || namespace === undefined || f.namespace === namespace),
    );
    if (!denied) return;
    const subject = name === undefined ? plural : `${plural}${group ? '.' + group : ''} "${name}"`;
    const scope =
      namespace === undefined ? 'at the cluster scope' : `in the namespace "${namespace}"`;
    throw fail(
      403,
      `${subject} is forbidden: User "${this.user}" cannot ${verb} resource "${plural}" in API group "${group}" ${scope}`,
      { ...(name === undefined ? {} : { name }), group, kind: plural },
    );
  }

  private list(target: Target, query: URLSearchParams): unknown {
    const { resource, namespace } = target;
    const filter: Filter = {
      namespace,
      labels: parseLabelSelector(query.get('labelSelector') ?? ''),
      fields: parseFieldSelector(query.get('fieldSelector') ?? '', resource),
    };
    const items = this.sorted(resource).filter((o) => this.matches(filter, o));
    return {
      kind: `${resource.def.kind}List`,
      apiVersion: resource.apiVersion,
      metadata: { resourceVersion: this.resourceVersion },
      // Typed lists of the real server carry no kind/apiVersion on items; custom resources do.
      items: items.map((o) => {
        if (!resource.builtIn) return o;
        const { kind: _k, apiVersion: _a, ...rest } = o;
        return rest;
      }),
    };
  }
}

async function readJson(req: IncomingMessage): Promise<KubeObject> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (value === null || typeof value !== 'object') throw new Error('not an object');
    return value as KubeObject;
  } catch (error) {
    throw fail(400, `invalid JSON body: ${String(error)}`);
  }
}
