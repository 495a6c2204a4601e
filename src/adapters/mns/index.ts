/**
 * MnsSource (docs/sources.md): long-polls an Alibaba Cloud MNS queue with `@alicloud/mns`, one
 * poller per source and replica. Replicas share a queue as MNS's consumers do: a received message
 * is invisible to the others for the queue's visibility timeout.
 *
 * Each message becomes a CloudEvent (messages.ts) and goes to the sink through
 * `PullContext.deliver`; it is deleted from the queue only once that resolved. While a delivery is
 * still trying, its visibility is extended (ChangeMessageVisibility, whose new receipt handle
 * replaces the old one), so that MNS does not hand it to another consumer meanwhile. A message
 * whose consumer died becomes visible again and is delivered again (at least once); one handed out
 * more than `maxDequeueCount` times goes to the source's dead-letter sink instead. Up to
 * `concurrency` messages are delivered at once; no more are received while all are busy, so a
 * refusing sink pauses consumption.
 */
import MNSClient, { type MNSMessage } from '@alicloud/mns';
import { parseDuration } from '../../core/duration.js';
import type { Resource } from '../../core/resources/types.js';
import type {
  PullContext,
  PullingAdapter,
  PullingSource,
  ResolvedSecrets,
} from '../../sources/contracts.js';
import { overridesOf } from '../webhook-event.js';
import { messageToEvent, type QueueOrigin } from './messages.js';
import { pauseAfterFailure, untilStopped } from '../pulling.js';

/** Defaults of the spec's fields (docs/sources.md). */
export const MNS_DEFAULTS = Object.freeze({
  waitSeconds: 10,
  batchSize: 16,
  concurrency: 16,
  visibilityTimeoutMs: 30_000,
});
/** The soonest an extension of a message's visibility is made again. */
const MIN_EXTEND_MS = 500;

interface MnsSourceSpec {
  readonly endpoint?: string;
  readonly accountId: string;
  readonly region?: string;
  readonly queue: string;
  readonly waitSeconds?: number;
  readonly batchSize?: number;
  readonly concurrency?: number;
  readonly visibilityTimeout?: string;
  readonly maxDequeueCount?: number;
  readonly base64Decode?: boolean;
}

/** The region of an MNS endpoint such as `https://123.mns.cn-hangzhou.aliyuncs.com`, if it says. */
export function regionOf(spec: Pick<MnsSourceSpec, 'endpoint' | 'region'>): string {
  if (spec.region !== undefined) return spec.region;
  const host = spec.endpoint === undefined ? '' : (URL.parse(spec.endpoint)?.hostname ?? '');
  const match = /\.mns\.([a-z0-9-]+?)(?:-internal)?(?:-vpc)?\.aliyuncs\.com$/.exec(host);
  return match?.[1] ?? '';
}

/** The MNS error code an SDK error carries in its name (`MNSQueueNotExistError`). */
export function mnsErrorCode(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  if (typeof name !== 'string') return undefined;
  const match = /^MNS(\w+?)Error$/.exec(name);
  return match?.[1];
}

/** Why an MNS request failed, as a condition reason. */
export function describeMnsError(error: unknown): { reason: string; message: string } {
  const code = mnsErrorCode(error);
  const message = (error as Error | null)?.message ?? String(error);
  const withCode = code === undefined ? message : `${code}: ${message}`;
  switch (code) {
    case 'QueueNotExist':
      return { reason: 'QueueNotFound', message: withCode };
    case 'SignatureDoesNotMatch':
    case 'AccessIDAuthError':
    case 'InvalidAccessKeyId':
    case 'InvalidSecurityToken':
    case 'SecurityTokenExpired':
    case 'TimeExpired':
      return { reason: 'AuthenticationFailed', message: withCode };
    case 'AccessDenied':
      return { reason: 'NotAuthorized', message: withCode };
    case undefined:
      break;
    default:
      return { reason: 'UpstreamError', message: withCode };
  }
  const errno = (error as { code?: unknown } | null)?.code;
  if (
    /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|ETIMEDOUT|EAI_AGAIN/.test(String(errno)) ||
    /ECONNREFUSED|ENOTFOUND|ReadTimeout|ConnectTimeout|socket hang up/i.test(message)
  ) {
    return { reason: 'Unreachable', message };
  }
  return { reason: 'UpstreamError', message };
}

/** One message being delivered: its current receipt handle, extended while it is. */
class InFlight {
  receiptHandle: string;
  private timer: NodeJS.Timeout | undefined;
  /** One call about the message at a time: an extension replaces its receipt handle. */
  private calls: Promise<void> = Promise.resolve();
  private done = false;

  constructor(
    readonly message: MNSMessage,
    private readonly extend: (handle: string) => Promise<{ handle: string; nextVisible: number }>,
    private readonly warn: (error: unknown, what: string) => void,
  ) {
    this.receiptHandle = message.ReceiptHandle;
    this.schedule(Number(message.NextVisibleTime));
  }

  /** Extends the visibility halfway to when it would run out. */
  private schedule(nextVisible: number): void {
    if (this.done) return;
    const remaining = Number.isFinite(nextVisible) ? nextVisible - Date.now() : 0;
    this.timer = setTimeout(
      () => {
        this.calls = this.calls.then(async () => {
          if (this.done) return;
          try {
            const extended = await this.extend(this.receiptHandle);
            this.receiptHandle = extended.handle;
            this.schedule(extended.nextVisible);
          } catch (error) {
            // Handed out again already (the handle expired): delivered twice, at least once.
            this.warn(error, 'could not extend the visibility of a message being delivered');
          }
        });
      },
      Math.max(MIN_EXTEND_MS, remaining / 2),
    );
  }

  /** Stops extending; resolves once no extension is under way, with the handle to delete. */
  async settle(): Promise<string> {
    this.done = true;
    clearTimeout(this.timer);
    await this.calls;
    return this.receiptHandle;
  }
}

class MnsSourceRun implements PullingSource {
  private readonly spec: MnsSourceSpec;
  private readonly origin: QueueOrigin;
  private readonly visibilitySeconds: number;
  private readonly concurrency: number;
  private readonly stopper = new AbortController();
  private readonly signal: AbortSignal;
  private readonly client: MNSClient;
  private loop: Promise<void> = Promise.resolve();
  private readonly inFlight = new Set<Promise<void>>();
  private freed: (() => void) | undefined;

  constructor(
    source: Resource,
    secrets: ResolvedSecrets,
    private readonly context: PullContext,
  ) {
    const spec = source.spec as unknown as MnsSourceSpec;
    this.spec = spec;
    this.signal = AbortSignal.any([context.signal, this.stopper.signal]);
    const region = regionOf(spec);
    this.origin = {
      accountId: spec.accountId,
      region,
      queue: spec.queue,
      base64Decode: spec.base64Decode === true,
      overrides: overridesOf(source),
    };
    const visibility =
      spec.visibilityTimeout === undefined ? undefined : parseDuration(spec.visibilityTimeout);
    this.visibilitySeconds = Math.max(
      1,
      Math.round((visibility ?? MNS_DEFAULTS.visibilityTimeoutMs) / 1000),
    );
    this.concurrency = spec.concurrency ?? MNS_DEFAULTS.concurrency;
    const securityToken = secrets['credentials.securityToken'];
    this.client = new MNSClient(spec.accountId, {
      accessKeyId: secrets['credentials.accessKey'] ?? '',
      accessKeySecret: secrets['credentials.secretKey'] ?? '',
      ...(spec.endpoint === undefined ? { region } : { endpoint: spec.endpoint }),
      ...(securityToken === undefined ? {} : { securityToken }),
      connectTimeout: 10_000,
    });
  }

  begin(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort(new Error('the source stopped'));
    await this.loop;
  }

  private get waitSeconds(): number {
    return this.spec.waitSeconds ?? MNS_DEFAULTS.waitSeconds;
  }

  /** Receives up to `count` messages, long polling; empty when the queue had none. */
  private async receive(count: number): Promise<{ messages: MNSMessage[]; requestId: string }> {
    const wait = this.waitSeconds;
    const resource =
      `/queues/${encodeURIComponent(this.spec.queue)}/messages?numOfMessages=${count}` +
      (wait > 0 ? `&waitseconds=${wait}` : '');
    try {
      // The SDK's batchReceiveMessage, asking for the request id as well.
      const response = await this.client.request<{ Message?: MNSMessage[] }>(
        'GET',
        resource,
        'Messages',
        '',
        ['x-mns-request-id'],
        { timeout: (wait + 5) * 1000 },
      );
      return {
        messages: response.body?.Message ?? [],
        requestId: response.headers['x-mns-request-id'] ?? '',
      };
    } catch (error) {
      if (mnsErrorCode(error) === 'MessageNotExist') return { messages: [], requestId: '' };
      throw error;
    }
  }

  /** Resolves once fewer than `concurrency` messages are being delivered, or the source stops. */
  private async untilFree(): Promise<void> {
    while (this.inFlight.size >= this.concurrency && !this.signal.aborted) {
      await untilStopped(this.signal, new Promise<void>((resolve) => (this.freed = resolve)));
    }
  }

  private async run(): Promise<void> {
    const batch = this.spec.batchSize ?? MNS_DEFAULTS.batchSize;
    for (let failures = 0; !this.signal.aborted;) {
      await this.untilFree();
      if (this.signal.aborted) break;
      let received;
      try {
        received = await untilStopped(
          this.signal,
          this.receive(Math.min(batch, this.concurrency - this.inFlight.size)),
        );
      } catch (error) {
        if (this.signal.aborted) break;
        failures++;
        const { reason, message } = describeMnsError(error);
        this.context.upstreamError(reason, `MNS: ${message}`);
        if (!(await pauseAfterFailure(this.signal, failures))) break;
        continue;
      }
      if (received === undefined) break;
      failures = 0;
      this.context.connected();
      if (received.messages.length === 0) continue;
      this.context.received(received.messages.length);
      for (const message of received.messages) {
        const handled = this.handle(message, received.requestId);
        this.inFlight.add(handled);
        void handled.finally(() => {
          this.inFlight.delete(handled);
          this.freed?.();
        });
      }
    }
    // Deliveries under way end as the source stops (deliver rejects): their messages come again.
    await Promise.all([...this.inFlight]);
  }

  private warn(message: MNSMessage, error: unknown, what: string): void {
    this.context.log.warn({ err: error, messageId: message.MessageId }, what);
  }

  /** Delivers one message, keeping it invisible meanwhile, and deletes it once accepted. */
  private async handle(message: MNSMessage, requestId: string): Promise<void> {
    const queue = this.spec.queue;
    const event = messageToEvent(message, requestId, this.origin);
    const flight = new InFlight(
      message,
      async (handle) => {
        const answer = await this.client.changeMessageVisibility(
          queue,
          handle,
          this.visibilitySeconds,
        );
        return {
          handle: answer.body.ReceiptHandle,
          nextVisible: Number(answer.body.NextVisibleTime),
        };
      },
      (error, what) => this.warn(message, error, what),
    );
    const max = this.spec.maxDequeueCount;
    try {
      if (max !== undefined && Number(message.DequeueCount) > max) {
        await this.context.deadLetter(event);
      } else {
        await this.context.deliver(event);
      }
    } catch {
      // The source stopped: not deleted, the message comes again.
      await flight.settle();
      return;
    }
    const handle = await flight.settle();
    try {
      await this.client.deleteMessage(queue, handle);
    } catch (error) {
      // It comes again once visible, and is delivered twice (at least once).
      this.warn(message, error, 'could not delete a delivered message');
    }
  }
}

export const mnsSourceAdapter: PullingAdapter = {
  kind: 'MnsSource',
  start(source, secrets, context) {
    const run = new MnsSourceRun(source, secrets, context);
    run.begin();
    return run;
  },
};
