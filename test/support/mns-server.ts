/**
 * An in-process fake of Alibaba Cloud MNS (Simple Message Queue) queues: the HTTP/XML API of
 * version 2015-06-06 as the real `@alicloud/mns` client speaks it through its `endpoint` option.
 * Tests await its events (`untilEmpty`, `untilReceived`, `untilPolling`, `untilVisible`); nothing
 * in here polls with sleeps: long polls are woken by sends and by one timer per queue set for the
 * moment the next invisible message becomes visible.
 *
 * What it checks on every request, in this order (first failure answers):
 *   Authorization present (400 MissingAuthorizationHeader) and `MNS id:sig` (400
 *   InvalidAuthorizationHeader); Date present (400 MissingDateHeader), parseable (400
 *   InvalidDateHeader), within 15 min (400 TimeExpired); x-mns-version present (400
 *   MissingVersionHeader: our name, the documentation lists no code for it); the key id known (403
 *   AccessIDAuthError; the error-code table also lists InvalidAccessKeyId, we follow the reference
 *   notes); the HMAC-SHA1 signature (403 SignatureDoesNotMatch, constant-time compare); when the
 *   server has an STS token, the `security-token` header equal to it (403 InvalidSecurityToken: our
 *   name); Content-MD5, when present, = base64(hex(md5(body))) (400 InvalidDegist, spelled as the
 *   MNS error-code table spells it). Then `failNext` rules, then the operation.
 *
 * Receipt handles: `<priority>-<32 hex>`, URL-safe because the client puts them in query strings
 * unencoded. A handle is valid while it is its message's latest one and before NextVisibleTime.
 *   - a handle never issued, replaced (by another receive or ChangeMessageVisibility) or expired:
 *     400 ReceiptHandleError (real MNS sometimes answers 404 MessageNotExist for expired ones);
 *   - any handle of a message already deleted: 404 MessageNotExist.
 * BatchDeleteMessage deletes what it can and answers 404 `<Errors>` listing the others (the client
 * then returns them as its body rather than throwing).
 *
 * Simplifications: MessageRetentionPeriod is stored, never enforced; a BatchSendMessage with one
 * invalid message is rejected whole (400 InvalidArgument); an empty or oversized body is 400
 * InvalidArgument; a body that is not well-formed XML text (a raw `<` or `&`, which the client sends
 * unescaped) is 400 MalformedXML, like the real service. Peeked messages carry no ReceiptHandle,
 * and FirstDequeueTime 0 while never received. Deleting a queue answers its pending long polls
 * with 404 QueueNotExist. Topics and ListQueue are not implemented (400 InvalidRequestURL).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface MnsServerOptions {
  readonly accountId?: string;
  readonly accessKeyId?: string;
  readonly accessKeySecret?: string;
  /** When set, every request must carry it in `security-token`. */
  readonly securityToken?: string;
}

/** A snapshot of one message. */
export interface MnsMessageState {
  readonly messageId: string;
  readonly body: string;
  readonly dequeueCount: number;
  readonly visible: boolean;
  readonly deleted: boolean;
  readonly priority: number;
  /** Ms epoch when it is (or was last) visible again. */
  readonly nextVisibleTime: number;
  /** Its current receipt handle, if it was ever received. */
  readonly receiptHandle?: string;
}

export interface MnsRequestRecord {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly code?: string;
}

const NS = 'http://mns.aliyuncs.com/doc/v1/';
const VERSION = '2015-06-06';
const MAX_SKEW_MS = 15 * 60_000;
const DEFAULT_WAIT_MS = 10_000;

/** A failure answered as an MNS `<Error>` document. */
class Fault extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** The errors this fake answers with (InvalidArgument aside): status and message. */
const FAULTS = {
  MissingAuthorizationHeader: [400, 'Authorization header is required.'],
  InvalidAuthorizationHeader: [400, 'The Authorization header format is invalid.'],
  MissingDateHeader: [400, 'Date header is required.'],
  InvalidDateHeader: [400, 'The Date header format is invalid.'],
  TimeExpired: [400, 'The http request you sent is expired.'],
  MissingVersionHeader: [400, 'x-mns-version header is required.'],
  AccessIDAuthError: [403, 'AccessID authentication fail.'],
  SignatureDoesNotMatch: [403, 'The request signature we calculated does not match yours.'],
  InvalidSecurityToken: [403, 'The security token you provided is invalid.'],
  InvalidDegist: [400, 'The Content-MD5 you specified is invalid.'],
  InvalidRequestURL: [400, 'Http request URL format invalid.'],
  MalformedXML: [400, 'The XML you provided was not well-formed.'],
  MissingReceiptHandle: [400, 'ReceiptHandle is required.'],
  MissingVisibilityTimeout: [400, 'VisibilityTimeout is required.'],
  QueueNotExist: [404, 'The queue name you provided is not exist.'],
  QueueAlreadyExist: [409, 'The queue name you provided already exist.'],
  MessageNotExist: [404, 'Message not exist.'],
  ReceiptHandleError: [400, 'The receipt handle you provide is not valid.'],
} as const;

const fault = (code: keyof typeof FAULTS): Fault =>
  new Fault(FAULTS[code][0], code, FAULTS[code][1]);
const invalid = (message: string): Fault => new Fault(400, 'InvalidArgument', message);

interface StoredMessage {
  readonly id: string;
  readonly body: string;
  readonly md5: string;
  readonly priority: number;
  readonly seq: number;
  readonly enqueueTime: number;
  firstDequeueTime: number | undefined;
  visibleAt: number;
  dequeueCount: number;
  handle: string | undefined;
  deleted: boolean;
}

/** [XML element, attribute, min, max, default] */
const NUMERIC_ATTRIBUTES = [
  ['VisibilityTimeout', 'visibilityTimeout', 1, 43200, 30],
  ['PollingWaitSeconds', 'pollingWaitSeconds', 0, 30, 0],
  ['DelaySeconds', 'delaySeconds', 0, 604800, 0],
  ['MaximumMessageSize', 'maximumMessageSize', 1024, 65536, 65536],
  ['MessageRetentionPeriod', 'messageRetentionPeriod', 60, 604800, 345600],
] as const;

type Attributes = Record<(typeof NUMERIC_ATTRIBUTES)[number][1], number>;
/** Queue attributes in seconds (bytes for the size), as CreateQueue takes them. */
export type MnsQueueAttributes = Partial<Readonly<Attributes>>;

interface Queue {
  readonly name: string;
  attributes: Attributes;
  readonly createTime: number;
  lastModifyTime: number;
  /** Undeleted messages, in enqueue order. */
  readonly live: Map<string, StoredMessage>;
  /** Every handle ever issued → its message (deleted ones included, to tell the two errors apart). */
  readonly handles: Map<string, StoredMessage>;
  readonly waiters: Waiter[];
  timer: NodeJS.Timeout | undefined;
  deleted: number;
  received: number;
  gone: boolean;
}

interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly url: string;
  readonly query: Map<string, string>;
  readonly body: string;
  readonly requestId: string;
}

interface Waiter {
  readonly ex: Exchange;
  readonly count: number;
  readonly batch: boolean;
  readonly timer: NodeJS.Timeout;
}

interface Watch {
  readonly check: () => boolean;
  readonly wakeAt?: () => number;
  wake?: NodeJS.Timeout;
  readonly deadline: NodeJS.Timeout;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

export class MnsServer {
  readonly endpoint: string;
  readonly accountId: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly securityToken: string | undefined;
  private readonly log: MnsRequestRecord[] = [];
  private readonly queues = new Map<string, Queue>();
  private readonly watches = new Set<Watch>();
  private readonly failRules: {
    remaining: number;
    status: number;
    code: string;
    method?: string;
  }[] = [];
  private seq = 0;
  private closing = false;

  private constructor(
    private readonly server: Server,
    options: MnsServerOptions,
  ) {
    const { port } = server.address() as AddressInfo;
    this.endpoint = `http://127.0.0.1:${port}`;
    this.accountId = options.accountId ?? '1234567890';
    this.accessKeyId = options.accessKeyId ?? 'test-key-id';
    this.accessKeySecret = options.accessKeySecret ?? 'test-key-secret';
    this.securityToken = options.securityToken;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.accept(req, res));
  }

  static async start(options: MnsServerOptions = {}): Promise<MnsServer> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new MnsServer(server, options);
  }

  /** Every request answered, in order: method, path (with query), status, error code if any. */
  get requests(): readonly MnsRequestRecord[] {
    return this.log;
  }

  createQueue(name: string, attributes: MnsQueueAttributes = {}): void {
    if (this.queues.has(name)) throw new Error(`MnsServer: queue ${name} already exists`);
    const parsed = defaultAttributes();
    for (const [, key, min, max] of NUMERIC_ATTRIBUTES) {
      const value = attributes[key];
      if (value !== undefined) parsed[key] = checkInt(String(value), key, min, max);
    }
    this.addQueue(name, parsed);
  }

  /** Sends as SendMessage would; returns the MessageId. */
  send(
    queue: string,
    body: string,
    options: { delaySeconds?: number; priority?: number } = {},
  ): string {
    const q = this.queue(queue);
    const delay = options.delaySeconds ?? q.attributes.delaySeconds;
    const m = this.enqueue(q, body, delay, options.priority ?? 8);
    this.pump(q);
    return m.id;
  }

  /** Undeleted messages, in enqueue order. */
  messages(queue: string): MnsMessageState[] {
    const now = Date.now();
    return [...this.queue(queue).live.values()].map((m) => ({
      messageId: m.id,
      body: m.body,
      dequeueCount: m.dequeueCount,
      visible: m.visibleAt <= now,
      deleted: m.deleted,
      priority: m.priority,
      nextVisibleTime: m.visibleAt,
      ...(m.handle === undefined ? {} : { receiptHandle: m.handle }),
    }));
  }

  deletedCount(queue: string): number {
    return this.queue(queue).deleted;
  }

  /** Long polls waiting on `queue` now. */
  pendingReceives(queue: string): number {
    return this.queue(queue).waiters.length;
  }

  /** Resolves once `queue` has no undeleted message. */
  untilEmpty(queue: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const q = this.queue(queue);
    return this.watch(`queue ${queue} to be empty`, timeoutMs, () => q.live.size === 0);
  }

  /** Resolves once `count` more messages were handed out by receives on `queue` (peeks excluded). */
  untilReceived(queue: string, count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const q = this.queue(queue);
    const target = q.received + count;
    return this.watch(`${count} receives on ${queue}`, timeoutMs, () => q.received >= target);
  }

  /** Resolves once at least `count` long polls are waiting on `queue`. */
  untilPolling(queue: string, count = 1, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const q = this.queue(queue);
    return this.watch(
      `${count} long polls on ${queue}`,
      timeoutMs,
      () => q.waiters.length >= count,
    );
  }

  /** Resolves once the message is visible (its NextVisibleTime passed); rejects if it is deleted. */
  untilVisible(queue: string, messageId: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const m = this.queue(queue).live.get(messageId);
    if (m === undefined) return Promise.reject(new Error(`MnsServer: no message ${messageId}`));
    const check = (): boolean => {
      if (m.deleted) throw new Error(`MnsServer: message ${messageId} was deleted`);
      return m.visibleAt <= Date.now();
    };
    return this.watch(`message ${messageId} to be visible`, timeoutMs, check, () => m.visibleAt);
  }

  /** The next `count` requests matching `method` (any when undefined) fail with `status`/`code`. */
  failNext(count: number, status: number, code: string, method?: string): void {
    this.failRules.push({
      remaining: count,
      status,
      code,
      ...(method ? { method: method.toUpperCase() } : {}),
    });
  }

  /** Answers pending long polls with 404 MessageNotExist, rejects pending waits, closes. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const answered: Promise<void>[] = [];
    for (const q of this.queues.values()) {
      clearTimeout(q.timer);
      for (const w of q.waiters.splice(0)) {
        clearTimeout(w.timer);
        const { res } = w.ex;
        if (res.writableEnded || res.destroyed) continue;
        answered.push(
          new Promise((resolve) => {
            res.once('finish', resolve);
            res.once('close', resolve);
          }),
        );
        this.error(w.ex, fault('MessageNotExist'));
      }
    }
    for (const w of this.watches) this.settle(w, new Error('MnsServer closed'));
    await Promise.all(answered);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // ---- plumbing -------------------------------------------------------------------------------

  private queue(name: string): Queue {
    const q = this.queues.get(name);
    if (q === undefined) throw new Error(`MnsServer: no queue ${name}`);
    return q;
  }

  private addQueue(name: string, attributes: Attributes): Queue {
    const now = Date.now();
    const q: Queue = {
      name,
      attributes,
      createTime: now,
      lastModifyTime: now,
      live: new Map(),
      handles: new Map(),
      waiters: [],
      timer: undefined,
      deleted: 0,
      received: 0,
      gone: false,
    };
    this.queues.set(name, q);
    return q;
  }

  private watch(what: string, timeoutMs: number, check: () => boolean, wakeAt?: () => number) {
    return new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(
        () => this.settle(w, new Error(`MnsServer: timed out after ${timeoutMs} ms: ${what}`)),
        timeoutMs,
      );
      const w: Watch = { check, deadline, resolve, reject, ...(wakeAt ? { wakeAt } : {}) };
      this.watches.add(w);
      this.notify();
    });
  }

  private settle(w: Watch, error?: Error): void {
    this.watches.delete(w);
    clearTimeout(w.deadline);
    clearTimeout(w.wake);
    if (error) w.reject(error);
    else w.resolve();
  }

  /** Re-checks every pending watch; called after each change of state. */
  private notify(): void {
    for (const w of this.watches) {
      try {
        if (w.check()) this.settle(w);
        else if (w.wakeAt) {
          clearTimeout(w.wake);
          w.wake = setTimeout(() => this.notify(), Math.max(0, w.wakeAt() - Date.now()) + 1);
        }
      } catch (error) {
        this.settle(w, error as Error);
      }
    }
  }

  private accept(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const url = req.url ?? '/';
      const ex: Exchange = {
        req,
        res,
        method: req.method ?? 'GET',
        url,
        query: parseQuery(url),
        body: Buffer.concat(chunks).toString('utf8'),
        requestId: randomBytes(12).toString('hex').toUpperCase(),
      };
      try {
        this.authenticate(ex, Buffer.concat(chunks));
        const rule = this.failRules.find((r) => r.method === undefined || r.method === ex.method);
        if (rule) {
          if (--rule.remaining <= 0) this.failRules.splice(this.failRules.indexOf(rule), 1);
          throw new Fault(rule.status, rule.code, 'Injected failure.');
        }
        this.route(ex);
      } catch (error) {
        this.error(
          ex,
          error instanceof Fault ? error : new Fault(500, 'InternalError', String(error)),
        );
      }
    });
  }

  private authenticate(ex: Exchange, body: Buffer): void {
    const header = (name: string): string | undefined => {
      const value = ex.req.headers[name];
      return Array.isArray(value) ? value.join(',') : value;
    };
    const authorization = header('authorization');
    if (authorization === undefined) throw fault('MissingAuthorizationHeader');
    const auth = /^MNS ([^:\s]+):(\S+)$/.exec(authorization);
    if (!auth) throw fault('InvalidAuthorizationHeader');
    const date = header('date');
    if (date === undefined) throw fault('MissingDateHeader');
    const time = Date.parse(date);
    if (Number.isNaN(time)) throw fault('InvalidDateHeader');
    if (Math.abs(Date.now() - time) > MAX_SKEW_MS) throw fault('TimeExpired');
    if (header('x-mns-version') === undefined) throw fault('MissingVersionHeader');
    if (auth[1] !== this.accessKeyId) throw fault('AccessIDAuthError');
    const canonicalHeaders = Object.keys(ex.req.headers)
      .filter((key) => key.startsWith('x-mns-'))
      .sort()
      .map((key) => `${key}:${header(key)}\n`)
      .join('');
    const toSign = [ex.method, header('content-md5') ?? '', header('content-type') ?? '', date]
      .map((part) => `${part}\n`)
      .join('');
    const expected = createHmac('sha1', this.accessKeySecret)
      .update(toSign + canonicalHeaders + ex.url, 'utf8')
      .digest();
    const given = Buffer.from(auth[2] ?? '', 'base64');
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw fault('SignatureDoesNotMatch');
    if (this.securityToken !== undefined && header('security-token') !== this.securityToken)
      throw fault('InvalidSecurityToken');
    const md5 = header('content-md5');
    const digest = createHash('md5').update(body).digest('hex');
    if (md5 !== undefined && md5 !== Buffer.from(digest, 'utf8').toString('base64'))
      throw fault('InvalidDegist');
  }

  private route(ex: Exchange): void {
    const path = ex.url.split('?', 1)[0] ?? '';
    const match = /^\/queues\/([^/]+)(\/messages)?\/?$/.exec(path);
    if (!match) throw fault('InvalidRequestURL');
    const [, rawName = '', messages] = match;
    const name = safeDecode(rawName);
    if (messages === undefined && ex.method === 'PUT') return this.putQueue(ex, name);
    const q = this.queues.get(name);
    if (q === undefined) throw fault('QueueNotExist');
    if (messages === undefined) {
      if (ex.method === 'GET') return this.reply(ex, 200, doc('Queue', queueXml(q)));
      if (ex.method === 'DELETE') return this.deleteQueue(ex, q);
      throw fault('InvalidRequestURL');
    }
    if (ex.method === 'POST') return this.sendMessages(ex, q);
    if (ex.method === 'GET') return this.receive(ex, q);
    if (ex.method === 'PUT') return this.changeVisibility(ex, q);
    if (ex.method === 'DELETE') return this.deleteMessages(ex, q);
    throw fault('InvalidRequestURL');
  }

  private reply(
    ex: Exchange,
    status: number,
    xml?: string,
    code?: string,
    extra: Record<string, string> = {},
  ): void {
    const { res } = ex;
    if (res.writableEnded || res.destroyed) return;
    const headers: Record<string, string | number> = {
      'x-mns-request-id': ex.requestId,
      'x-mns-version': VERSION,
      ...extra,
    };
    if (xml !== undefined) {
      headers['content-type'] = 'text/xml;charset=utf-8';
      headers['content-length'] = Buffer.byteLength(xml);
    }
    res.writeHead(status, headers);
    res.end(xml);
    this.log.push({ method: ex.method, path: ex.url, status, ...(code ? { code } : {}) });
  }

  private error(ex: Exchange, fault: Fault): void {
    const inner =
      el('Code', fault.code) +
      el('Message', fault.message) +
      el('RequestId', ex.requestId) +
      el('HostId', this.endpoint);
    this.reply(ex, fault.status, doc('Error', inner), fault.code);
  }

  // ---- queues ---------------------------------------------------------------------------------

  private putQueue(ex: Exchange, name: string): void {
    const existing = this.queues.get(name);
    if (ex.query.get('metaoverride') === 'true') {
      if (existing === undefined) throw fault('QueueNotExist');
      existing.attributes = parseAttributes(ex.body, existing.attributes);
      existing.lastModifyTime = Date.now();
      this.pump(existing);
      return this.reply(ex, 204);
    }
    if (!/^[A-Za-z][A-Za-z0-9-]{0,119}$/.test(name))
      throw invalid('The queue name you provided is invalid.');
    const attributes = parseAttributes(ex.body, defaultAttributes());
    if (existing !== undefined) {
      if (JSON.stringify(existing.attributes) === JSON.stringify(attributes))
        return this.reply(ex, 204);
      throw fault('QueueAlreadyExist');
    }
    this.addQueue(name, attributes);
    this.reply(ex, 201, undefined, undefined, { location: `${this.endpoint}/queues/${name}` });
  }

  private deleteQueue(ex: Exchange, q: Queue): void {
    this.queues.delete(q.name);
    q.gone = true;
    clearTimeout(q.timer);
    for (const w of q.waiters.splice(0)) {
      clearTimeout(w.timer);
      this.error(w.ex, fault('QueueNotExist'));
    }
    q.live.clear();
    this.notify();
    this.reply(ex, 204);
  }

  // ---- messages -------------------------------------------------------------------------------

  /** Stores a message (validated) without waking long polls: callers pump afterwards. */
  private enqueue(q: Queue, body: string, delaySeconds: number, priority: number): StoredMessage {
    checkInt(String(priority), 'Priority', 1, 16);
    checkInt(String(delaySeconds), 'DelaySeconds', 0, 604800);
    checkBody(q, body);
    const now = Date.now();
    const m: StoredMessage = {
      id: randomBytes(16).toString('hex').toUpperCase(),
      body,
      md5: createHash('md5').update(body, 'utf8').digest('hex').toUpperCase(),
      priority,
      seq: this.seq++,
      enqueueTime: now,
      firstDequeueTime: undefined,
      visibleAt: now + delaySeconds * 1000,
      dequeueCount: 0,
      handle: undefined,
      deleted: false,
    };
    q.live.set(m.id, m);
    return m;
  }

  private sendMessages(ex: Exchange, q: Queue): void {
    const batch = /<Messages[\s>]/.test(ex.body);
    const given = elements(ex.body, 'Message').slice(0, batch ? undefined : 1);
    if (given.length === 0) throw fault('MalformedXML');
    if (given.length > 16) throw invalid('The count of messages should between 1 and 16.');
    const parsed = given.map((xml) => {
      const body = childText(xml, 'MessageBody');
      if (body === undefined) throw invalid('MessageBody is required.');
      const delay = childText(xml, 'DelaySeconds');
      const priority = childText(xml, 'Priority');
      return {
        body,
        delay: delay ? checkInt(delay, 'DelaySeconds', 0, 604800) : q.attributes.delaySeconds,
        priority: priority ? checkInt(priority, 'Priority', 1, 16) : 8,
      };
    });
    for (const p of parsed) checkBody(q, p.body); // all valid before any is stored
    const sent = parsed.map((p) => this.enqueue(q, p.body, p.delay, p.priority));
    this.pump(q);
    const items = sent.map((m) => el('MessageId', m.id) + el('MessageBodyMD5', m.md5));
    this.replyMessages(ex, 201, items, batch);
  }

  /** Visible messages: lowest priority number first, FIFO within a priority. */
  private pick(q: Queue, count: number): StoredMessage[] {
    const now = Date.now();
    const visible = [...q.live.values()].filter((m) => m.visibleAt <= now);
    visible.sort((a, b) => a.priority - b.priority || a.seq - b.seq);
    return visible.slice(0, count);
  }

  private receive(ex: Exchange, q: Queue): void {
    const batch = ex.query.has('numofmessages');
    const count = batch ? checkInt(ex.query.get('numofmessages') ?? '', 'numOfMessages', 1, 16) : 1;
    if (ex.query.get('peekonly') === 'true') {
      const picked = this.pick(q, count);
      if (picked.length === 0) throw fault('MessageNotExist');
      return this.answer(ex, picked, batch, true);
    }
    const waitParam = ex.query.get('waitseconds');
    const wait =
      waitParam === undefined
        ? q.attributes.pollingWaitSeconds
        : checkInt(waitParam, 'waitseconds', 0, 30);
    const picked = this.pick(q, count);
    if (picked.length > 0 || wait === 0 || this.closing) {
      if (picked.length === 0) throw fault('MessageNotExist');
      return this.deliver(q, ex, picked, batch);
    }
    const waiter: Waiter = {
      ex,
      count,
      batch,
      timer: setTimeout(() => {
        this.removeWaiter(q, waiter);
        this.error(ex, fault('MessageNotExist'));
      }, wait * 1000),
    };
    q.waiters.push(waiter);
    ex.res.once('close', () => {
      clearTimeout(waiter.timer);
      this.removeWaiter(q, waiter);
    });
    this.schedule(q);
    this.notify();
  }

  private removeWaiter(q: Queue, waiter: Waiter): void {
    const index = q.waiters.indexOf(waiter);
    if (index < 0) return;
    q.waiters.splice(index, 1);
    this.schedule(q);
    this.notify();
  }

  private deliver(q: Queue, ex: Exchange, picked: StoredMessage[], batch: boolean): void {
    const now = Date.now();
    for (const m of picked) {
      m.dequeueCount += 1;
      m.firstDequeueTime ??= now;
      m.visibleAt = now + q.attributes.visibilityTimeout * 1000;
      m.handle = newHandle(m.priority);
      q.handles.set(m.handle, m);
      q.received += 1;
    }
    this.answer(ex, picked, batch, false);
    this.schedule(q);
    this.notify();
  }

  private answer(ex: Exchange, picked: StoredMessage[], batch: boolean, peek: boolean): void {
    this.replyMessages(
      ex,
      200,
      picked.map((m) => messageXml(m, peek)),
      batch,
    );
  }

  /** `<Message>` with the first item's elements, or `<Messages>` with one `<Message>` each. */
  private replyMessages(ex: Exchange, status: number, items: string[], batch: boolean): void {
    const inner = batch ? items.map((x) => `<Message>${x}</Message>`).join('') : (items[0] ?? '');
    this.reply(ex, status, doc(batch ? 'Messages' : 'Message', inner));
  }

  /** Serves waiting long polls (oldest first) while messages are visible, then re-arms the timer. */
  private pump(q: Queue): void {
    for (let w = q.waiters[0]; w !== undefined; w = q.waiters[0]) {
      if (w.ex.res.destroyed) {
        q.waiters.shift();
        clearTimeout(w.timer);
        continue;
      }
      const picked = this.pick(q, w.count);
      if (picked.length === 0) break;
      q.waiters.shift();
      clearTimeout(w.timer);
      this.deliver(q, w.ex, picked, w.batch);
    }
    this.schedule(q);
    this.notify();
  }

  /** While long polls wait, one timer per queue fires when the next invisible message shows. */
  private schedule(q: Queue): void {
    clearTimeout(q.timer);
    q.timer = undefined;
    if (q.waiters.length === 0 || q.gone || this.closing) return;
    const now = Date.now();
    let next = Infinity;
    for (const m of q.live.values()) if (m.visibleAt > now) next = Math.min(next, m.visibleAt);
    if (next === Infinity) return;
    q.timer = setTimeout(() => {
      q.timer = undefined;
      this.pump(q);
    }, next - now);
  }

  /** The message a handle may act on now, or the fault for it. */
  private byHandle(q: Queue, handle: string): StoredMessage {
    const m = q.handles.get(handle);
    if (m === undefined) throw fault('ReceiptHandleError');
    if (m.deleted) throw fault('MessageNotExist');
    if (m.handle !== handle || m.visibleAt <= Date.now()) throw fault('ReceiptHandleError');
    return m;
  }

  private remove(q: Queue, m: StoredMessage): void {
    m.deleted = true;
    q.live.delete(m.id);
    q.deleted += 1;
  }

  private deleteMessages(ex: Exchange, q: Queue): void {
    const single = ex.query.get('receipthandle');
    if (single !== undefined || !/<ReceiptHandles[\s>]/.test(ex.body)) {
      if (!single) throw fault('MissingReceiptHandle');
      this.remove(q, this.byHandle(q, single));
      this.pump(q);
      return this.reply(ex, 204);
    }
    const handles = elements(ex.body, 'ReceiptHandle').map((h) => xmlText(h).trim());
    if (handles.length === 0 || handles.length > 16)
      throw invalid('The count of receipt handles should between 1 and 16.');
    const errors: string[] = [];
    for (const handle of handles) {
      try {
        this.remove(q, this.byHandle(q, handle));
      } catch (error) {
        if (!(error instanceof Fault)) throw error;
        const inner = el('ErrorCode', error.code) + el('ErrorMessage', error.message);
        errors.push(`<Error>${inner}${el('ReceiptHandle', handle)}</Error>`);
      }
    }
    this.pump(q);
    if (errors.length === 0) return this.reply(ex, 204);
    this.reply(ex, 404, doc('Errors', errors.join('')));
  }

  private changeVisibility(ex: Exchange, q: Queue): void {
    const handle = ex.query.get('receipthandle');
    if (!handle) throw fault('MissingReceiptHandle');
    const timeout = ex.query.get('visibilitytimeout');
    if (timeout === undefined) throw fault('MissingVisibilityTimeout');
    const seconds = checkInt(timeout, 'VisibilityTimeout', 1, 43200);
    const m = this.byHandle(q, handle);
    m.visibleAt = Date.now() + seconds * 1000;
    m.handle = newHandle(m.priority);
    q.handles.set(m.handle, m);
    this.pump(q);
    const inner = el('ReceiptHandle', m.handle) + el('NextVisibleTime', m.visibleAt);
    this.reply(ex, 200, doc('ChangeVisibility', inner));
  }
}

// ---- XML and small helpers -----------------------------------------------------------------------

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\r': '&#13;',
};

function el(name: string, value: string | number): string {
  return `<${name}>${String(value).replace(/[&<>"'\r]/g, (c) => ESCAPES[c] ?? c)}</${name}>`;
}

function doc(root: string, inner: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><${root} xmlns="${NS}">${inner}</${root}>`;
}

function messageXml(m: StoredMessage, peek: boolean): string {
  return (
    el('MessageId', m.id) +
    (peek || m.handle === undefined ? '' : el('ReceiptHandle', m.handle)) +
    el('MessageBodyMD5', m.md5) +
    el('MessageBody', m.body) +
    el('EnqueueTime', m.enqueueTime) +
    (peek ? '' : el('NextVisibleTime', m.visibleAt)) +
    el('FirstDequeueTime', m.firstDequeueTime ?? 0) +
    el('DequeueCount', m.dequeueCount) +
    el('Priority', m.priority)
  );
}

function queueXml(q: Queue): string {
  const now = Date.now();
  let active = 0;
  let inactive = 0;
  let delayed = 0;
  for (const m of q.live.values()) {
    if (m.visibleAt <= now) active += 1;
    else if (m.dequeueCount > 0) inactive += 1;
    else delayed += 1;
  }
  const a = q.attributes;
  return (
    el('QueueName', q.name) +
    el('CreateTime', Math.floor(q.createTime / 1000)) +
    el('LastModifyTime', Math.floor(q.lastModifyTime / 1000)) +
    el('VisibilityTimeout', a.visibilityTimeout) +
    el('MaximumMessageSize', a.maximumMessageSize) +
    el('MessageRetentionPeriod', a.messageRetentionPeriod) +
    el('DelaySeconds', a.delaySeconds) +
    el('PollingWaitSeconds', a.pollingWaitSeconds) +
    el('ActiveMessages', active) +
    el('InactiveMessages', inactive) +
    el('DelayMessages', delayed) +
    el('LoggingEnabled', 'False')
  );
}

const TEXT_PIECE = /<!\[CDATA\[([\s\S]*?)\]\]>|&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);/g;
const NAMED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** The text of an element's content: entities and CDATA resolved; markup inside is malformed. */
function xmlText(raw: string): string {
  if (/[<&]/.test(raw.replace(TEXT_PIECE, ''))) throw fault('MalformedXML');
  return raw.replace(TEXT_PIECE, (_all, cdata: string | undefined, entity: string) => {
    if (cdata !== undefined) return cdata;
    if (entity.startsWith('#'))
      return String.fromCodePoint(
        parseInt(entity.slice(entity[1] === 'x' ? 2 : 1), entity[1] === 'x' ? 16 : 10),
      );
    return NAMED[entity] ?? '';
  });
}

/** The raw contents of every `<name>…</name>` (or `<name/>`) in `xml`. */
function elements(xml: string, name: string): string[] {
  const pattern = new RegExp(`<${name}(?:\\s[^>]*)?(?:/>|>([\\s\\S]*?)</${name}\\s*>)`, 'g');
  return [...xml.matchAll(pattern)].map((m) => m[1] ?? '');
}

function childText(xml: string, name: string): string | undefined {
  const raw = elements(xml, name)[0];
  return raw === undefined ? undefined : xmlText(raw);
}

function checkBody(q: Queue, body: string): void {
  const size = Buffer.byteLength(body);
  const limit = q.attributes.maximumMessageSize;
  if (size < 1 || size > limit)
    throw invalid(`The length of MessageBody should between 1 and ${limit}.`);
}

function checkInt(text: string, name: string, min: number, max: number): number {
  const value = /^\s*-?\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max))
    throw invalid(`The value of ${name} should between ${min} and ${max}.`);
  return value;
}

function defaultAttributes(): Attributes {
  const a = {} as Attributes;
  for (const [, key, , , fallback] of NUMERIC_ATTRIBUTES) a[key] = fallback;
  return a;
}

function parseAttributes(xml: string, base: Attributes): Attributes {
  const a = { ...base };
  for (const [element, key, min, max] of NUMERIC_ATTRIBUTES) {
    const text = childText(xml, element);
    if (text !== undefined && text !== '') a[key] = checkInt(text, element, min, max);
  }
  return a;
}

/** Query parameters as the client sends them (unencoded), keys lower-cased. */
function parseQuery(url: string): Map<string, string> {
  const query = new Map<string, string>();
  const start = url.indexOf('?');
  if (start < 0) return query;
  for (const part of url.slice(start + 1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    query.set(safeDecode(key).toLowerCase(), eq < 0 ? '' : safeDecode(part.slice(eq + 1)));
  }
  return query;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function newHandle(priority: number): string {
  return `${priority}-${randomBytes(16).toString('hex').toUpperCase()}`;
}
