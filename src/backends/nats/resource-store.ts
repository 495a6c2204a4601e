/**
 * The ResourceStore on a NATS KV bucket (docs/nats-backend-plan.md, "Resources").
 *
 * One bucket, `<prefix>-resources`, file storage. A resource lives under the key
 * `<collection>.<namespace>.<name>`, its value the resource as JSON, its revision the KV revision
 * (the stream sequence of the write: it only grows, so a key never gets a revision twice, even
 * across delete and re-create). Compare-and-set rides on the server's "expected last subject
 * sequence" check; a delete writes a delete marker, which watches report as a delete.
 *
 * The bucket keeps a few values per key (HISTORY), not just the last one: a watch's consumer reads
 * each message from the stream when it sends it, so with one value per key a watcher lagging even
 * a little behind a quick update (or a delete, or a purge, which drops the history) would never see
 * the value it replaced, and "every change" would not hold. Reads use the last value only.
 *
 * Watches use `kv.watch()` (the last value of every key, then every later write). Where the
 * initial values end is decided against the stream's last sequence read right after the watch
 * started: everything up to it is the snapshot, everything after it a change. After a reconnect,
 * or when its KV watch ends, a watch starts a new one from the revision after the last one it
 * handed over (the server may have lost the old consumer).
 */
import { compareKeys, copyKey, describeKey } from '../resource-key.js';
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  StorageType,
  jetstream,
  type JetStreamClient,
  type JsMsg,
} from '@nats-io/jetstream';
import { Kvm, KvWatchInclude, type KV, type KvEntry } from '@nats-io/kv';
import { errors as natsErrors } from '@nats-io/transport-node';
import { TributaryError } from '../../core/errors.js';
import type { Collection, Resource, ResourceKey } from '../../core/resources/types.js';
import type { ResourceChange, ResourceStore, ResourceWatch, StoredResource } from '../contracts.js';
import type { NatsLink } from './connection.js';

type Listener = (change: ResourceChange) => void;

/** A watch or a list that makes no progress for this long fails (the server stopped answering). */
const STALL_MS = 15_000;
/** Delay between attempts to re-create a watch whose consumer is gone. */
const RESUME_RETRY_MS = 1_000;
/** Longest encoded key: NATS subjects have no hard limit, but a protocol line does. */
const MAX_KEY_LENGTH = 1_024;
/** Values kept per key: how many writes to one key a lagging watcher can fall behind by. */
const HISTORY = 10;
/** Attempts of a delete whose read-then-delete keeps losing to concurrent writes. */
const DELETE_ATTEMPTS = 50;
/** The KV layout on its stream (the KV specification, ADR-8): needed by `list`'s own consumer. */
const KV_OPERATION_HEADER = 'KV-Operation';

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const PLAIN_TOKEN = /^[A-Za-z0-9-]+$/;
const ENCODED_TOKEN = /^(?:[A-Za-z0-9-]|_[0-9A-F]{2})+$/;

/**
 * One KV key token for any string: letters, digits and `-` stay (so DNS-1123 names are stored as
 * they are), every other UTF-8 byte becomes `_XX` (upper-case hex), and the empty string is `_`.
 * Injective, so every key maps to its own token. Undefined for strings that are not well-formed
 * UTF-16 (they have no UTF-8 form to tell them apart).
 */
function encodeToken(value: string): string | undefined {
  if (PLAIN_TOKEN.test(value)) return value;
  if (value === '') return '_';
  const bytes = encoder.encode(value);
  let out = '';
  for (const byte of bytes) {
    const char = String.fromCharCode(byte);
    out +=
      byte < 0x80 && PLAIN_TOKEN.test(char)
        ? char
        : `_${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return strictDecoder.decode(bytes) === value ? out : undefined;
}

function decodeToken(token: string): string | undefined {
  if (PLAIN_TOKEN.test(token)) return token;
  if (token === '_') return '';
  if (!ENCODED_TOKEN.test(token)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < token.length;) {
    if (token[i] === '_') {
      bytes.push(Number.parseInt(token.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      bytes.push(token.charCodeAt(i));
      i += 1;
    }
  }
  try {
    return strictDecoder.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

/** The KV key of `key`, or undefined when it cannot be stored (so it cannot exist either). */
function kvKey(key: ResourceKey): string | undefined {
  const parts = [key.collection, key.namespace, key.name].map(encodeToken);
  if (parts.some((part) => part === undefined)) return undefined;
  const joined = parts.join('.');
  return joined.length > MAX_KEY_LENGTH ? undefined : joined;
}

function unstorable(key: ResourceKey): TributaryError {
  return new TributaryError(
    'BAD_REQUEST',
    `${describeKey(key)} cannot be stored: the key is too long or not valid text`,
  );
}

/** The resource key of a KV key, or undefined for a key this store did not write. */
function resourceKey(raw: string): ResourceKey | undefined {
  const tokens = raw.split('.');
  if (tokens.length !== 3) return undefined;
  const [collection, namespace, name] = tokens.map(decodeToken);
  if (collection === undefined || namespace === undefined || name === undefined) return undefined;
  return Object.freeze({ collection: collection as Collection, namespace, name });
}

function parseResource(value: Uint8Array, key: ResourceKey): Resource {
  try {
    return JSON.parse(new TextDecoder().decode(value)) as Resource;
  } catch (error) {
    throw new TributaryError('INTERNAL', `${describeKey(key)} holds a value that is not JSON`, {
      cause: error,
    });
  }
}

function serialize(resource: Resource): string {
  const body = JSON.stringify(resource) as string | undefined;
  if (body === undefined) throw new TributaryError('BAD_REQUEST', 'A resource must be an object');
  return body;
}

function isWrongLastSequence(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** The server refused a message larger than its limit (JetStream's own error code). */
const MESSAGE_TOO_LARGE = 10_054;

function warn(what: string, error: unknown): void {
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  process.emitWarning(`${what}: ${detail}`, { code: 'TRIBUTARY_NATS' });
}

/** One `watch()`: its listener, where it is in the bucket, and the KV watch feeding it. */
class Watcher {
  /** Highest revision handed over (or folded into the snapshot). */
  position = 0;
  stopped = false;
  /** Bumped whenever the feeding iterator is replaced; an old loop stops at the next entry. */
  generation = 0;
  iterator: { stop(): void } | undefined;
  /** Until the snapshot is complete: entries that arrived before the boundary was known. */
  private early: KvEntry[] | undefined = [];
  private boundary: number | undefined;
  private readonly initial = new Map<string, StoredResource>();
  private stall: NodeJS.Timeout | undefined;
  readonly ready: Promise<StoredResource[]>;
  private settle!: { resolve(s: StoredResource[]): void; reject(e: Error): void };

  constructor(private readonly listener: Listener) {
    this.ready = new Promise<StoredResource[]>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Nobody may be waiting any more when it fails (a store closed mid-way): no unhandled rejection.
    this.ready.catch(() => {});
    this.armStall();
  }

  get live(): boolean {
    return this.early === undefined;
  }

  private armStall(): void {
    clearTimeout(this.stall);
    this.stall = setTimeout(() => {
      this.fail(
        new TributaryError(
          'BACKEND_UNAVAILABLE',
          `The NATS resource watch made no progress for ${STALL_MS} ms`,
          { retryAfter: 1 },
        ),
      );
    }, STALL_MS);
    this.stall.unref();
  }

  /** The stream's last sequence right after the KV watch started: the end of the snapshot. */
  setBoundary(lastSequence: number, messages: number): void {
    if (this.live || this.stopped) return;
    this.boundary = lastSequence;
    const early = this.early ?? [];
    this.early = [];
    for (const entry of early) this.accept(entry);
    // With nothing stored, no entry can mark the end: the snapshot is what was folded so far.
    if (!this.live && (messages === 0 || lastSequence === 0)) this.finish();
  }

  accept(entry: KvEntry): void {
    if (this.stopped) return;
    if (this.early !== undefined) {
      if (this.boundary === undefined) {
        this.early.push(entry);
        return;
      }
      this.armStall();
      if (entry.revision <= this.boundary) {
        this.fold(entry);
        if (entry.revision === this.boundary) this.finish();
        return;
      }
      this.finish();
    }
    if (entry.revision <= this.position) return; // already handed over (a resumed watch)
    this.position = entry.revision;
    const change = toChange(entry);
    if (change === undefined) return;
    try {
      this.listener(change);
    } catch (error) {
      warn('a resource watch listener threw', error);
    }
  }

  private fold(entry: KvEntry): void {
    this.position = Math.max(this.position, entry.revision);
    const change = toChange(entry);
    if (change === undefined) return;
    if (change.type === 'put') this.initial.set(entry.key, change.stored);
    else this.initial.delete(entry.key);
  }

  private finish(): void {
    clearTimeout(this.stall);
    this.early = undefined;
    this.position = Math.max(this.position, this.boundary ?? 0);
    this.settle.resolve([...this.initial.values()].sort(compareKeys));
    this.initial.clear();
  }

  /** Fails a watch whose snapshot is not complete yet; a live one is left to resume. */
  fail(error: Error): void {
    if (this.live) return;
    this.stop();
    this.settle.reject(error);
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.stall);
    this.generation++;
    this.iterator?.stop();
    this.iterator = undefined;
  }
}

/** What a KV entry means to a listener; undefined for keys and values this store does not own. */
function toChange(entry: KvEntry): ResourceChange | undefined {
  const key = resourceKey(entry.key);
  if (key === undefined) return undefined;
  if (entry.operation !== 'PUT') return { type: 'delete', key };
  try {
    return {
      type: 'put',
      stored: { key, resource: parseResource(entry.value, key), revision: entry.revision },
    };
  } catch (error) {
    warn(`skipped a resource change`, error);
    return undefined;
  }
}

export class NatsResourceStore implements ResourceStore {
  private closed = false;
  private readonly watchers = new Set<Watcher>();
  private readonly js: JetStreamClient;
  private readonly stream: string;
  private readonly subjectPrefix: string;

  private constructor(
    private readonly link: NatsLink,
    private readonly kv: KV,
    bucket: string,
  ) {
    this.js = jetstream(link.nc);
    this.stream = `KV_${bucket}`;
    this.subjectPrefix = `$KV.${bucket}.`;
    link.onReconnect(() => {
      if (this.closed) return;
      // The server may have lost the watches' consumers (a restart): start each one again where
      // it was. Entries the old consumer still delivers are dropped by the generation check.
      for (const watcher of this.watchers) if (watcher.live) void this.resume(watcher);
    });
  }

  static async open(link: NatsLink, prefix: string): Promise<NatsResourceStore> {
    const bucket = `${prefix}-resources`;
    try {
      const kv = await new Kvm(link.nc).create(bucket, {
        history: HISTORY,
        storage: StorageType.File,
        // Reads from the stream leader: a get right after a write (from any process) sees it.
        allow_direct: false,
      });
      return new NatsResourceStore(link, kv, bucket);
    } catch (error) {
      throw unavailable(`Cannot open the NATS KV bucket ${bucket}`, error);
    }
  }

  /** Rejects at once when closed or disconnected, so no request waits out a timeout. */
  private usable(): void {
    if (this.closed) throw new TributaryError('SHUTTING_DOWN', 'The resource store is closed');
    if (!this.link.connected()) {
      throw new TributaryError('BACKEND_UNAVAILABLE', 'NATS is not connected', { retryAfter: 1 });
    }
  }

  /** A TributaryError for what the NATS client threw. */
  private failure(error: unknown, doing: string): TributaryError {
    if (error instanceof TributaryError) return error;
    if (this.closed) {
      return new TributaryError('SHUTTING_DOWN', 'The resource store is closed', { cause: error });
    }
    const message = error instanceof Error ? error.message : String(error);
    if (
      (error instanceof JetStreamApiError && error.code === MESSAGE_TOO_LARGE) ||
      (error instanceof natsErrors.InvalidArgumentError && message.includes('max_payload'))
    ) {
      return new TributaryError('PAYLOAD_TOO_LARGE', `Cannot ${doing}: ${message}`, {
        cause: error,
      });
    }
    if (
      error instanceof JetStreamApiError ||
      error instanceof natsErrors.TimeoutError ||
      error instanceof natsErrors.NoRespondersError ||
      error instanceof natsErrors.RequestError ||
      error instanceof natsErrors.ConnectionError ||
      error instanceof natsErrors.ClosedConnectionError ||
      error instanceof natsErrors.DrainingConnectionError ||
      (error instanceof Error && error.name === 'JetStreamNotEnabled')
    ) {
      return unavailable(`Cannot ${doing}`, error);
    }
    return new TributaryError('INTERNAL', `Cannot ${doing}: ${message}`, { cause: error });
  }

  private async run<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      this.usable();
      return await fn();
    } catch (error) {
      throw this.failure(error, doing);
    }
  }

  get(key: ResourceKey): Promise<StoredResource | undefined> {
    return this.run(`read ${describeKey(key)}`, async () => {
      const frozen = copyKey(key);
      const k = kvKey(frozen);
      if (k === undefined) return undefined;
      const entry = await this.kv.get(k);
      if (entry === null || entry.operation !== 'PUT') return undefined;
      return {
        key: frozen,
        resource: parseResource(entry.value, frozen),
        revision: entry.revision,
      };
    });
  }

  list(collection: Collection, namespace?: string): Promise<StoredResource[]> {
    const what = namespace === undefined ? collection : `${collection} in ${namespace}`;
    return this.run(`list ${what}`, async () => {
      const c = encodeToken(collection);
      const ns = namespace === undefined ? '*' : encodeToken(namespace);
      if (c === undefined || ns === undefined) return [];
      const found = await this.scan(`${c}.${ns}.*`);
      return found.sort(compareKeys);
    });
  }

  /**
   * The current value of every key matching `filter`: a short-lived consumer that starts at each
   * key's last message, read until the server says nothing is pending, then deleted.
   */
  private async scan(filter: string): Promise<StoredResource[]> {
    const consumer = await this.js.consumers.getPushConsumer(this.stream, {
      filter_subjects: `${this.subjectPrefix}${filter}`,
      deliver_policy: DeliverPolicy.LastPerSubject,
      headers_only: false,
    });
    const found = new Map<string, StoredResource>();
    try {
      if ((await consumer.info(true)).num_pending === 0) return [];
      await new Promise<void>((resolve, reject) => {
        let stall: NodeJS.Timeout | undefined;
        const arm = () => {
          clearTimeout(stall);
          stall = setTimeout(() => {
            void messages.then((m) => m.stop());
            reject(unavailable('Cannot list resources: NATS stopped sending them'));
          }, STALL_MS);
          stall.unref();
        };
        const take = (message: JsMsg) => {
          arm();
          const raw = message.subject.slice(this.subjectPrefix.length);
          const key = resourceKey(raw);
          if (key !== undefined) {
            const operation = message.headers?.get(KV_OPERATION_HEADER) ?? '';
            if (operation === 'DEL' || operation === 'PURGE') found.delete(raw);
            else {
              const resource = parseResource(message.data, key);
              found.set(raw, { key, resource, revision: message.seq });
            }
          }
          if (message.info.pending === 0) {
            clearTimeout(stall);
            void messages.then((m) => m.stop());
            resolve();
          }
        };
        const messages = consumer.consume({
          callback: (message) => {
            try {
              take(message);
            } catch (error) {
              clearTimeout(stall);
              void messages.then((m) => m.stop());
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          },
        });
        arm();
        messages.then(
          (m) =>
            void m.closed().then((error) => {
              clearTimeout(stall);
              reject(error ?? unavailable('Cannot list resources: the NATS consumer closed'));
            }),
          (error: unknown) => {
            clearTimeout(stall);
            reject(error instanceof Error ? error : new Error(String(error)));
          },
        );
      });
    } finally {
      consumer.delete().catch(() => {});
    }
    return [...found.values()];
  }

  create(key: ResourceKey, resource: Resource): Promise<StoredResource> {
    return this.run(`create ${describeKey(key)}`, async () => {
      const frozen = copyKey(key);
      const k = kvKey(frozen);
      if (k === undefined) throw unstorable(frozen);
      const body = serialize(resource);
      let revision: number;
      try {
        revision = await this.kv.create(k, body);
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
        throw new TributaryError('CONFLICT', `${describeKey(frozen)} already exists`, {
          cause: error,
        });
      }
      return { key: frozen, resource: JSON.parse(body) as Resource, revision };
    });
  }

  update(key: ResourceKey, resource: Resource, expectedRevision: number): Promise<StoredResource> {
    return this.run(`update ${describeKey(key)}`, async () => {
      const frozen = copyKey(key);
      const k = kvKey(frozen);
      if (k === undefined) throw unstorable(frozen);
      const body = serialize(resource);
      const stale = (cause?: unknown) =>
        new TributaryError(
          'CONFLICT',
          `${describeKey(frozen)} does not exist or is not at revision ${expectedRevision}`,
          cause === undefined ? {} : { cause },
        );
      // No stored key is ever at a revision below 1 (and the client refuses to send one).
      if (!Number.isSafeInteger(expectedRevision) || expectedRevision < 1) throw stale();
      // The revisions handed out are those of values, never those of delete markers, so the
      // server's check also rejects updating a deleted key.
      let revision: number;
      try {
        revision = await this.kv.update(k, body, expectedRevision);
      } catch (error) {
        if (isWrongLastSequence(error)) throw stale(error);
        throw error;
      }
      return { key: frozen, resource: JSON.parse(body) as Resource, revision };
    });
  }

  delete(key: ResourceKey, expectedRevision?: number): Promise<boolean> {
    return this.run(`delete ${describeKey(key)}`, async () => {
      const frozen = copyKey(key);
      const k = kvKey(frozen);
      if (k === undefined) return false;
      // Read, then delete on condition that nothing was written in between; a lost race reads
      // again, so the answer (absent, stale, deleted) is about the latest value.
      for (let attempt = 1; ; attempt++) {
        const entry = await this.kv.get(k);
        if (entry === null || entry.operation !== 'PUT') return false;
        if (expectedRevision !== undefined && entry.revision !== expectedRevision) {
          throw new TributaryError(
            'CONFLICT',
            `${describeKey(frozen)} is at revision ${entry.revision}, not ${expectedRevision}`,
          );
        }
        try {
          // A delete, not a purge: a purge would also drop the values a lagging watcher has not
          // been sent yet. The older values go as later writes of the key push them out.
          await this.kv.delete(k, { previousSeq: entry.revision });
          return true;
        } catch (error) {
          if (!isWrongLastSequence(error)) throw error;
          if (attempt >= DELETE_ATTEMPTS) {
            throw new TributaryError('CONFLICT', `${describeKey(frozen)} keeps changing`, {
              cause: error,
            });
          }
        }
      }
    });
  }

  async watch(listener: (change: ResourceChange) => void): Promise<ResourceWatch> {
    const watcher = new Watcher(listener);
    try {
      this.usable();
      this.watchers.add(watcher);
      await this.feed(watcher, KvWatchInclude.LastValue);
      // Read after the KV watch exists: every value up to this sequence is part of what it
      // delivers first (or was replaced by a later write it delivers after).
      const status = await this.kv.status();
      const state = status.streamInfo.state;
      watcher.setBoundary(state.last_seq, state.messages);
      const snapshot = await watcher.ready;
      if (this.closed) throw new TributaryError('SHUTTING_DOWN', 'The resource store is closed');
      return {
        snapshot,
        stop: () => {
          watcher.stop();
          this.watchers.delete(watcher);
        },
      };
    } catch (error) {
      watcher.stop();
      this.watchers.delete(watcher);
      throw this.failure(error, 'watch the resources');
    }
  }

  /** Starts a KV watch feeding `watcher` (from its position when resuming). */
  private async feed(watcher: Watcher, include?: KvWatchInclude): Promise<void> {
    const iterator = await this.kv.watch(
      include === undefined ? { resumeFromRevision: watcher.position + 1 } : { include },
    );
    if (watcher.stopped) {
      iterator.stop();
      return;
    }
    watcher.iterator?.stop();
    watcher.iterator = iterator;
    const generation = ++watcher.generation;
    void (async () => {
      try {
        for await (const entry of iterator) {
          if (generation !== watcher.generation) break;
          watcher.accept(entry);
        }
      } catch (error) {
        if (generation === watcher.generation && !watcher.stopped) {
          warn('the NATS resource watch failed', error);
        }
      }
      if (generation !== watcher.generation || watcher.stopped || this.closed) return;
      if (watcher.live) void this.resume(watcher);
      else watcher.fail(unavailable('The NATS resource watch ended'));
    })();
  }

  /** Replaces a live watcher's KV watch with one starting after its position, retrying. */
  private async resume(watcher: Watcher): Promise<void> {
    while (!watcher.stopped && !this.closed) {
      try {
        await this.feed(watcher);
        return;
      } catch (error) {
        if (watcher.stopped || this.closed) return;
        warn('could not resume the NATS resource watch, retrying', error);
        await new Promise<void>((resolve) => setTimeout(resolve, RESUME_RETRY_MS).unref());
      }
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const watcher of this.watchers) {
      watcher.fail(new TributaryError('SHUTTING_DOWN', 'The resource store is closed'));
      watcher.stop();
    }
    this.watchers.clear();
    return Promise.resolve();
  }
}

function unavailable(message: string, cause?: unknown): TributaryError {
  const detail = cause instanceof Error ? `: ${cause.message}` : '';
  return new TributaryError('BACKEND_UNAVAILABLE', `${message}${detail}`, {
    retryAfter: 1,
    ...(cause === undefined ? {} : { cause }),
  });
}
