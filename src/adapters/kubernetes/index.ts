/**
 * ApiServerSource (docs/sources.md): follows Kubernetes objects with `@kubernetes/client-node`
 * (list, then watch from the list's resourceVersion) and turns every change into a CloudEvent
 * (events.ts), as Knative's adapter does.
 *
 * One stream per resource and namespace (one per resource for cluster-scoped kinds or all
 * namespaces). A stream delivers its changes one at a time, in order, and moves its position (the
 * resourceVersion) only past what the sink accepted; while the sink refuses, the watch is paused
 * (closed once MAX_QUEUED changes wait) and resumed from that position afterwards.
 *
 * - The first list is the baseline and emits nothing (Knative's adapter does the same).
 * - After 410 Gone (the position expired) it lists again and emits only what changed against what
 *   it knew: add for new objects, update for a new resourceVersion, delete for those gone.
 * - A watch that ends is opened again from the position; any other error (unreachable, 401, 403)
 *   shows in the `Connected` condition and the stream starts again with backoff.
 */
import {
  ApiException,
  KubeConfig,
  KubernetesObjectApi,
  Watch,
  type KubernetesObject,
  type ResponseContext,
  type V1APIResource,
} from '@kubernetes/client-node';
import { compileTriggerFilter, type CompiledFilter } from '../../core/filters.js';
import type { Resource, SubscriptionsFilter } from '../../core/resources/types.js';
import type {
  PullContext,
  PullingAdapter,
  PullingSource,
  ResolvedSecrets,
} from '../../sources/contracts.js';
import { overridesOf } from '../webhook-event.js';
import {
  changeEvent,
  ownedBy,
  selectorString,
  type Change,
  type EventMode,
  type EventOrigin,
  type KubeObject,
} from './events.js';
import { pauseAfterFailure } from '../pulling.js';

/** Watch events reported together (one checkpoint write before and one after). */
const BATCH = 100;
/** Changes a stream holds before it closes its watch until the sink took them. */
export const MAX_QUEUED = 1_000;

interface LabelSelector {
  readonly matchLabels?: Record<string, string>;
  readonly matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface ApiServerSourceSpec {
  readonly resources: readonly {
    readonly apiVersion: string;
    readonly kind: string;
    readonly selector?: LabelSelector;
  }[];
  readonly owner?: { readonly apiVersion?: string; readonly kind?: string };
  readonly mode?: EventMode;
  readonly namespaces?: readonly string[];
  readonly namespaceSelector?: LabelSelector;
  readonly filters?: readonly SubscriptionsFilter[];
  readonly cluster?: {
    readonly kubeconfig?: string;
    readonly context?: string;
    readonly inCluster?: boolean;
    readonly server?: string;
    readonly insecureSkipTLSVerify?: boolean;
  };
}

/**
 * The generic client, with the discovery it does for itself made usable, answering JSON as the
 * server sent it (the generated models would drop unknown fields and turn times into Dates, and an
 * event's data is the object as Kubernetes has it).
 */
class ResourceApi extends KubernetesObjectApi {
  protected override async processResponse<T extends KubernetesObject>(
    response: ResponseContext,
  ): Promise<T> {
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299) {
      return JSON.parse(await response.body.text()) as T;
    }
    throw new ApiException(
      response.httpStatusCode,
      'Unsuccessful HTTP Request',
      await response.getBodyAsAny(),
      response.headers,
    );
  }

  /** What the server says of a kind (plural, namespaced), or undefined when it does not know it. */
  describe(apiVersion: string, kind: string): Promise<V1APIResource | undefined> {
    return this.resource(apiVersion, kind);
  }

  /** The collection's path, in one namespace or in all. */
  listPath(apiVersion: string, kind: string, namespace: string | undefined): Promise<string> {
    return this.specUriPath({ apiVersion, kind, metadata: { namespace } }, 'list');
  }
}

/** The client configuration a source's `cluster` asks for. */
export function kubeConfigOf(
  cluster: ApiServerSourceSpec['cluster'],
  secrets: ResolvedSecrets,
): KubeConfig {
  const kc = new KubeConfig();
  const token = secrets['cluster.token'];
  const caCert = secrets['cluster.caCert'];
  if (cluster?.server !== undefined) {
    kc.loadFromOptions({
      clusters: [
        {
          name: 'cluster',
          server: cluster.server,
          // The client refuses plain http unless told to skip TLS checks, which http has none of.
          skipTLSVerify:
            cluster.insecureSkipTLSVerify === true || cluster.server.startsWith('http:'),
          ...(caCert === undefined ? {} : { caData: Buffer.from(caCert).toString('base64') }),
        },
      ],
      users: [{ name: 'user', ...(token === undefined ? {} : { token }) }],
      contexts: [{ name: 'context', cluster: 'cluster', user: 'user' }],
      currentContext: 'context',
    });
    return kc;
  }
  if (cluster?.inCluster === true) kc.loadFromCluster();
  else if (cluster?.kubeconfig !== undefined) kc.loadFromFile(cluster.kubeconfig);
  else kc.loadFromDefault();
  if (cluster?.context !== undefined) kc.setCurrentContext(cluster.context);
  return kc;
}

interface ErrorLike {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly body?: unknown;
  readonly message?: string;
}

/** Why a Kubernetes request failed, as a condition reason, and its message. */
export function describeKubeError(error: unknown): { reason: string; message: string } {
  const e = (typeof error === 'object' && error !== null ? error : {}) as ErrorLike;
  const status = typeof e.statusCode === 'number' ? e.statusCode : Number(e.code);
  // The API's Status message when there is one ("pods is forbidden: ..."), else the error's.
  let message = e.message ?? String(error);
  const body = typeof e.body === 'string' ? safeJson(e.body) : e.body;
  if (typeof body === 'object' && body !== null && 'message' in body) {
    message = `${status} ${String(body.message)}`;
  } else if (Number.isInteger(status) && status >= 400) {
    message = `${status} ${message.split('\n')[0] ?? ''}`;
  }
  if (status === 401) return { reason: 'AuthenticationFailed', message };
  if (status === 403) return { reason: 'NotAuthorized', message };
  if (status === 404 || /Unrecognized API version and kind/.test(message)) {
    return { reason: 'ResourceNotFound', message };
  }
  if (
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|ETIMEDOUT|EAI_AGAIN/.test(
      `${String(e.code)} ${message}`,
    )
  ) {
    return { reason: 'Unreachable', message };
  }
  return { reason: 'UpstreamError', message };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A change of one object, to report. */
interface ObjectChange {
  readonly change: Change;
  readonly object: KubeObject;
}

/**
 * An object as a checkpoint keeps it: [resourceVersion, name, namespace]; the resourceVersion is
 * '' for an object whose add was being reported (maybe it was, maybe not).
 */
type SavedObject = readonly [string, string, string];

/** The checkpoint: the objects each stream knew, by stream id and uid. */
interface Checkpoint {
  readonly streams: Readonly<Record<string, Readonly<Record<string, SavedObject>>>>;
}

/** A larger checkpoint is not saved (it travels with the lease): a restart then starts afresh. */
const MAX_CHECKPOINT_CHARS = 512 * 1024;

/** How the checkpoint names a stream. */
function streamId(
  apiVersion: string,
  kind: string,
  namespace: string | undefined,
  labelSelector: string | undefined,
): string {
  return [apiVersion, kind, namespace ?? '', labelSelector ?? ''].join(' ');
}

/** The position expired (410 Gone): list again. */
class Gone extends Error {}

/** A watch event: the change's type and the object (a bookmark's object has only its RV). */
interface WatchChange {
  readonly type: string;
  readonly object: KubeObject;
}

const resourceVersionOf = (object: KubeObject): string | undefined =>
  object.metadata?.resourceVersion;

/** One list-and-watch of one resource in one namespace (or all). */
class Stream {
  /**
   * The objects as last seen, by uid; undefined until the first list. From a checkpoint, they are
   * references only (name, namespace, uid, resourceVersion).
   */
  private known: Map<string, KubeObject> | undefined;
  /** New objects whose add is being reported (in the checkpoint as maybe reported). */
  private readonly unconfirmed = new Map<string, KubeObject>();
  private position: string | undefined;
  /** Names the stream in the checkpoint. */
  readonly id: string;

  constructor(
    private readonly run: ApiServerSourceRun,
    private readonly apiVersion: string,
    private readonly kind: string,
    private readonly namespace: string | undefined,
    private readonly labelSelector: string | undefined,
    saved: Readonly<Record<string, SavedObject>> | undefined,
  ) {
    this.id = streamId(apiVersion, kind, namespace, labelSelector);
    if (saved !== undefined) {
      this.known = new Map(
        Object.entries(saved).map(([uid, [resourceVersion, name, ns]]) => [
          uid,
          {
            apiVersion,
            kind,
            metadata: { name, ...(ns === '' ? {} : { namespace: ns }), uid, resourceVersion },
          },
        ]),
      );
    }
  }

  /** What the checkpoint keeps of the stream: each object's resourceVersion, name and namespace. */
  snapshot(): Record<string, SavedObject> | undefined {
    if (this.known === undefined) return undefined;
    const saved: Record<string, SavedObject> = {};
    for (const [uid, object] of this.unconfirmed) {
      const m = object.metadata ?? {};
      saved[uid] = ['', m.name ?? '', m.namespace ?? ''];
    }
    for (const [uid, object] of this.known) {
      const m = object.metadata ?? {};
      saved[uid] = [m.resourceVersion ?? '', m.name ?? '', m.namespace ?? ''];
    }
    return saved;
  }

  async start(): Promise<void> {
    const { signal } = this.run;
    for (let failures = 0, expired = 0; !signal.aborted;) {
      try {
        if (this.position === undefined) await this.list();
        await this.watch();
        failures = 0;
        expired = 0;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof Gone) {
          this.position = undefined;
          // A list whose position expires at once again: pause rather than list in a loop.
          if (++expired > 1 && !(await pauseAfterFailure(signal, expired - 1))) return;
          continue;
        }
        failures++;
        this.run.failed(error);
        if (!(await pauseAfterFailure(signal, failures))) return;
      }
    }
  }

  private uidOf(object: KubeObject): string {
    const m = object.metadata ?? {};
    return m.uid ?? `${m.namespace ?? ''}/${m.name ?? ''}`;
  }

  /** Lists the collection; after the first time, emits what changed since (see the module). */
  private async list(): Promise<void> {
    const api = this.run.api;
    const list = await api.list(
      this.apiVersion,
      this.kind,
      this.namespace,
      undefined,
      undefined,
      undefined,
      undefined,
      this.labelSelector,
    );
    this.run.context.connected();
    const items = (list.items as KubeObject[]).map((item) => ({
      ...item,
      apiVersion: item.apiVersion ?? this.apiVersion,
      kind: item.kind ?? this.kind,
    }));
    const before = this.known;
    const now = new Map(items.map((item) => [this.uidOf(item), item]));
    if (before !== undefined) {
      const changes: ObjectChange[] = [];
      for (const item of items) {
        const old = before.get(this.uidOf(item));
        const rv = old === undefined ? undefined : resourceVersionOf(old);
        // '' : from a checkpoint, an object whose add may not have been reported.
        if (rv === undefined || rv === '') changes.push({ change: 'add', object: item });
        else if (rv !== resourceVersionOf(item)) changes.push({ change: 'update', object: item });
      }
      for (const [uid, old] of before) {
        if (!now.has(uid)) changes.push({ change: 'delete', object: old });
      }
      await this.deliverChanges(changes);
    }
    this.known = now;
    this.position = list.metadata?.resourceVersion;
    this.run.changed();
    // The first baseline is kept before any change is reported: a restart must find it, or it
    // would take the objects then present as its baseline and miss the changes in between.
    if (before === undefined) await this.run.checkpointNow();
  }

  /** Watches from the position until the stream ends, pauses, or fails. */
  private async watch(): Promise<void> {
    const run = this.run;
    const path = await run.api.listPath(this.apiVersion, this.kind, this.namespace);
    const queue: WatchChange[] = [];
    const end: { error?: Error; ended: boolean } = { ended: false };
    let wake: (() => void) | undefined;
    let controller: AbortController | undefined;
    const stopWatch = (): void => controller?.abort();
    run.signal.addEventListener('abort', stopWatch);
    try {
      controller = await new Watch(run.kc).watch(
        path,
        {
          resourceVersion: this.position,
          allowWatchBookmarks: true,
          ...(this.labelSelector === undefined || this.labelSelector === ''
            ? {}
            : { labelSelector: this.labelSelector }),
        },
        (type, object: KubeObject) => {
          queue.push({ type, object });
          // The sink is slow: stop reading; the watch resumes from the position once drained.
          if (queue.length >= MAX_QUEUED) controller?.abort();
          wake?.();
        },
        (error: unknown) => {
          end.ended = true;
          if (error !== null && error !== undefined) {
            end.error = error instanceof Error ? error : new Error(JSON.stringify(error));
          }
          wake?.();
        },
      );
      if (!end.ended) run.context.connected();
      for (;;) {
        if (queue.length > 0) {
          await this.applyAll(queue.splice(0, BATCH));
          continue;
        }
        if (end.ended || run.signal.aborted) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      run.signal.removeEventListener('abort', stopWatch);
      controller?.abort();
    }
    const error = end.error;
    if (error !== undefined && !run.signal.aborted) {
      if ((error as ErrorLike).statusCode === 410) throw new Gone('410 Gone');
      // An abort of our own (paused, stopped) ends the stream like the server closing it.
      if (error.name !== 'AbortError') throw error;
    }
  }

  /** Delivers the changes of some watch events, in order, and moves the position past them. */
  private async applyAll(batch: readonly WatchChange[]): Promise<void> {
    const known = this.known ?? new Map<string, KubeObject>();
    this.known = known;
    const changes: ObjectChange[] = [];
    // Each object's resourceVersion as of the events so far ('' when only maybe reported).
    const versions = new Map<string, string | undefined>();
    const versionOf = (uid: string): string | undefined =>
      versions.has(uid) ? versions.get(uid) : resourceVersionOf(known.get(uid) ?? {});
    let position: string | undefined;
    for (const { type, object } of batch) {
      const rv = resourceVersionOf(object);
      const uid = this.uidOf(object);
      if (type === 'ADDED' || type === 'MODIFIED') {
        const prior = versionOf(uid);
        // Seen already (a watch opened again from an older position): nothing new.
        if (prior === rv) continue;
        changes.push({ change: prior === undefined || prior === '' ? 'add' : 'update', object });
        versions.set(uid, rv);
      } else if (type === 'DELETED') {
        changes.push({ change: 'delete', object });
        versions.set(uid, undefined);
      } else if (type === 'ERROR') {
        await this.deliverChanges(changes);
        if (position !== undefined) this.position = position;
        const status = object as { code?: unknown; message?: unknown };
        const message = typeof status.message === 'string' ? status.message : 'watch error';
        if (status.code === 410) throw new Gone(message);
        throw Object.assign(new Error(message), { statusCode: status.code });
      } else if (type !== 'BOOKMARK') {
        continue;
      }
      if (rv !== undefined) position = rv;
    }
    await this.deliverChanges(changes);
    if (position !== undefined) this.position = position;
  }

  /**
   * Reports changes one at a time, updating what the stream knows after each, and has the
   * checkpoint saved. An object new to the checkpoint is written into it (as maybe reported)
   * before its add is: a restart reports it again rather than miss that it was deleted meanwhile.
   */
  private async deliverChanges(changes: readonly ObjectChange[]): Promise<void> {
    if (changes.length === 0) return;
    const known = this.known!;
    let fresh = false;
    for (const { change, object } of changes) {
      const uid = this.uidOf(object);
      if (change === 'add' && !known.has(uid) && !this.unconfirmed.has(uid)) {
        this.unconfirmed.set(uid, object);
        fresh = true;
      }
    }
    if (fresh) {
      this.run.changed();
      await this.run.checkpointNow();
    }
    for (const { change, object } of changes) {
      await this.run.emit(change, object);
      const uid = this.uidOf(object);
      this.unconfirmed.delete(uid);
      if (change === 'delete') known.delete(uid);
      else known.set(uid, object);
      this.run.changed();
    }
    void this.run.checkpointNow().catch(() => {});
  }
}

export class ApiServerSourceRun implements PullingSource {
  readonly signal: AbortSignal;
  readonly kc: KubeConfig;
  readonly api: ResourceApi;
  private readonly spec: ApiServerSourceSpec;
  private readonly origin: EventOrigin;
  private readonly filter: CompiledFilter;
  private readonly stopper = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private dirty = false;
  private streams: readonly Stream[] = [];
  private saves: Promise<void> = Promise.resolve();
  private tooLarge = false;

  constructor(
    private readonly source: Resource,
    secrets: ResolvedSecrets,
    readonly context: PullContext,
  ) {
    this.spec = source.spec as unknown as ApiServerSourceSpec;
    this.signal = AbortSignal.any([context.signal, this.stopper.signal]);
    this.kc = kubeConfigOf(this.spec.cluster, secrets);
    this.api = this.kc.makeApiClient(ResourceApi);
    // Knative's `filters` (Subscriptions API dialects, ANDed), compiled once as a trigger's.
    this.filter = compileTriggerFilter({ filters: [...(this.spec.filters ?? [])] });
    this.origin = {
      source: this.kc.getCurrentCluster()?.server ?? '',
      mode: this.spec.mode ?? 'Reference',
      overrides: overridesOf(source),
    };
  }

  begin(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort(new Error('the source stopped'));
    await this.loop;
  }

  failed(error: unknown): void {
    if (this.signal.aborted) return;
    const { reason, message } = describeKubeError(error);
    this.context.upstreamError(reason, `Kubernetes: ${message}`);
  }

  /** Delivers the event of one change (unless the owner filter or `filters` drop it). */
  async emit(change: Change, object: KubeObject): Promise<void> {
    const owner = this.spec.owner;
    if (owner !== undefined && !ownedBy(object, owner)) return;
    const event = changeEvent(change, object, this.origin);
    if (!this.filter(event)) return;
    this.context.received(1);
    await this.context.deliver(event);
  }

  /** The namespaces to watch: listed ones, those a selector picks, or undefined for all. */
  private async namespaces(): Promise<readonly string[] | undefined> {
    const { namespaces, namespaceSelector } = this.spec;
    if (namespaces !== undefined) return namespaces;
    if (namespaceSelector === undefined) return [this.source.metadata.namespace];
    const selector = selectorString(namespaceSelector);
    if (selector === '') return undefined;
    const list = await this.api.list(
      'v1',
      'Namespace',
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      selector,
    );
    return (list.items as KubeObject[]).flatMap((item) =>
      item.metadata?.name ? [item.metadata.name] : [],
    );
  }

  /** Something a stream knows changed (the checkpoint is saved on the next tick). */
  changed(): void {
    this.dirty = true;
  }

  /** Saves the checkpoint now (after the save under way); rejects when it could not. */
  checkpointNow(): Promise<void> {
    const next = this.saves.then(() => this.saveNow(this.streams));
    this.saves = next.catch(() => {});
    return next;
  }

  private async saveNow(streams: readonly Stream[]): Promise<void> {
    const checkpoint = this.context.checkpoint;
    if (checkpoint === undefined || !this.dirty) return;
    this.dirty = false;
    const state: Checkpoint = {
      streams: Object.fromEntries(
        streams.flatMap((stream) => {
          const snapshot = stream.snapshot();
          return snapshot === undefined ? [] : [[stream.id, snapshot]];
        }),
      ),
    };
    if (JSON.stringify(state).length > MAX_CHECKPOINT_CHARS) {
      if (!this.tooLarge) {
        this.tooLarge = true;
        this.context.log.warn(
          { limit: MAX_CHECKPOINT_CHARS },
          'too many objects to keep a checkpoint: a restart lists afresh and misses what changed meanwhile',
        );
      }
      return;
    }
    try {
      await checkpoint.save(state);
    } catch (error) {
      this.dirty = true;
      throw error;
    }
  }

  /** Discovers the resources, then runs one stream per resource and namespace. */
  private async run(): Promise<void> {
    const saved = this.context.checkpoint?.state as Checkpoint | undefined;
    for (let failures = 0; !this.signal.aborted;) {
      let streams: Stream[];
      try {
        const namespaces = await this.namespaces();
        streams = [];
        for (const resource of this.spec.resources) {
          const found = await this.api.describe(resource.apiVersion, resource.kind);
          if (found === undefined) {
            throw new Error(
              `Unrecognized API version and kind: ${resource.apiVersion} ${resource.kind}`,
            );
          }
          const selector =
            resource.selector === undefined ? undefined : selectorString(resource.selector);
          const targets = found.namespaced && namespaces !== undefined ? namespaces : [undefined];
          for (const namespace of targets) {
            const id = streamId(resource.apiVersion, resource.kind, namespace, selector);
            streams.push(
              new Stream(
                this,
                resource.apiVersion,
                resource.kind,
                namespace,
                selector,
                saved?.streams[id],
              ),
            );
          }
        }
      } catch (error) {
        failures++;
        this.failed(error);
        if (!(await pauseAfterFailure(this.signal, failures))) return;
        continue;
      }
      this.streams = streams;
      await Promise.all(streams.map((stream) => stream.start()));
      // Stopped: what was delivered last is saved for whoever runs the source next.
      await this.checkpointNow().catch(() => {});
      return;
    }
  }
}

export const apiServerSourceAdapter: PullingAdapter = {
  kind: 'ApiServerSource',
  // No consumer group: one replica at a time watches, with a checkpoint to continue from.
  exclusive: true,
  start(source, secrets, context) {
    const run = new ApiServerSourceRun(source, secrets, context);
    run.begin();
    return run;
  },
};
