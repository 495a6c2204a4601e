/**
 * RocketMQSource (docs/sources.md): a SimpleConsumer of `rocketmq-client-nodejs` per source and
 * replica, in the source's consumer group, talking gRPC to a RocketMQ 5 proxy. Replicas in one
 * group share the topic's messages (RocketMQ's clustering consumption).
 *
 * Each received message becomes a CloudEvent (messages.ts) and goes to the sink through
 * `PullContext.deliver`; it is acknowledged only once that resolved. While a delivery is still
 * trying (the sink refuses, a service retries), the message's invisible duration is extended, so
 * RocketMQ does not hand it to another consumer meanwhile; a message whose consumer died becomes
 * visible again after its invisible duration and is delivered again (at least once). A batch is received
 * only when the previous one is done: while the sink refuses, consumption pauses.
 */
import { format } from 'node:util';
import { SimpleConsumer, type MessageView } from 'rocketmq-client-nodejs';
import { parseDuration } from '../../core/duration.js';
import type { Resource } from '../../core/resources/types.js';
import type {
  PullContext,
  PullingAdapter,
  PullingSource,
  ResolvedSecrets,
} from '../../sources/contracts.js';
import { overridesOf } from '../webhook-event.js';
import { messageToEvent, type MessageOrigin } from './messages.js';
import { pauseAfterFailure, untilStopped } from '../pulling.js';

/** Messages asked for at once (the proxy's limit is 32). */
export const RECEIVE_BATCH = 16;
/**
 * How long a received message stays invisible to other consumers unless `spec.invisibleDuration`
 * says otherwise; extended every third of it while the delivery is still trying.
 */
export const DEFAULT_INVISIBLE_MS = 30_000;
/** How long one receive waits for messages (long polling). */
const AWAIT_DURATION_MS = 5_000;

interface RocketMQSourceSpec {
  readonly endpoints: string | readonly string[];
  readonly topic: string;
  readonly consumerGroup: string;
  readonly tag?: string;
  readonly namespace?: string;
  readonly tls?: boolean;
  readonly invisibleDuration?: string;
}

interface ErrorLike {
  readonly name?: string;
  readonly message?: string;
  readonly code?: number | string;
  readonly details?: string;
  readonly cause?: unknown;
}

/** Why a RocketMQ client error happened, as a condition reason, and its message. */
export function describeRocketMQError(error: unknown): { reason: string; message: string } {
  // The SDK wraps the proxy's answer (a startup failure's cause is the route query's error).
  const chain: ErrorLike[] = [];
  for (let e: unknown = error; typeof e === 'object' && e !== null && chain.length < 6;) {
    chain.push(e);
    e = (e as ErrorLike).cause;
  }
  const texts = chain.map((e) =>
    // gRPC errors carry the proxy's own words in `details` ("group not found: ...").
    e.details !== undefined && e.details !== '' && !(e.message ?? '').includes(e.details)
      ? `${e.message ?? ''}: ${e.details}`
      : (e.message ?? ''),
  );
  const message = [...new Set(texts.filter((t) => t !== ''))].join(': ') || String(error);
  const names = chain.map((e) => e.name ?? e.constructor?.name ?? '');
  const codes = chain.map((e) => Number(e.code));
  let reason = 'UpstreamError';
  // The proxy answers 40100 (UNAUTHORIZED) both for bad credentials and for missing permissions.
  if (/has no permission|PERMISSION_DENIED|forbidden/i.test(message) || codes.includes(40300)) {
    reason = 'NotAuthorized';
  } else if (
    names.includes('UnauthorizedException') ||
    codes.includes(40100) ||
    /UNAUTHENTICATED|unauthorized|check signature failed|User:\S+ is not found|username cannot be null/i.test(
      message,
    )
  ) {
    reason = 'AuthenticationFailed';
  } else if (names.includes('ForbiddenException')) {
    reason = 'NotAuthorized';
  } else if (/group not (found|exist)|CONSUMER_GROUP_NOT_FOUND/i.test(message)) {
    reason = 'GroupNotFound';
  } else if (
    names.includes('NotFoundException') ||
    /topic.*not (found|exist)|TOPIC_NOT_FOUND|No topic route/i.test(message)
  ) {
    reason = 'TopicNotFound';
  } else if (
    /UNAVAILABLE|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|No connection established|DEADLINE_EXCEEDED|Deadline exceeded|Failed to connect/i.test(
      message,
    )
  ) {
    reason = 'Unreachable';
  }
  return { reason, message };
}

/** How long the client may take to start (it waits for the proxy's settings, which never come
 * while, say, the consumer group does not exist). */
const STARTUP_TIMEOUT_MS = 20_000;

/** A log call of the SDK as one line of text, errors as their message and the proxy's details. */
function logLine(args: readonly unknown[]): string {
  const shown = args.map((arg) => {
    if (typeof arg !== 'object' || arg === null) return arg;
    const e = arg as ErrorLike;
    if (e.message === undefined) return arg;
    return e.details !== undefined && e.details !== '' && !e.message.includes(e.details)
      ? `${e.message}: ${e.details}`
      : e.message;
  });
  return format(...shown).slice(0, 1_000);
}

class RocketMQSourceRun implements PullingSource {
  private readonly spec: RocketMQSourceSpec;
  private readonly origin: MessageOrigin;
  private readonly invisibleMs: number;
  private readonly stopper = new AbortController();
  private readonly signal: AbortSignal;
  private loop: Promise<void> = Promise.resolve();
  /** Receives work: the SDK's logged errors are then its own business (it retries them). */
  private receiving = false;
  /** What the SDK last logged as an error, while starting. */
  private lastLogged: string | undefined;
  /** The SDK's logger: quiet, but an error it logs while starting shows in the status. */
  private readonly logger = {
    info: () => {},
    debug: () => {},
    warn: () => {},
    error: (...args: unknown[]) => this.logged(args),
  };

  constructor(
    source: Resource,
    private readonly secrets: ResolvedSecrets,
    private readonly context: PullContext,
  ) {
    this.spec = source.spec as unknown as RocketMQSourceSpec;
    this.signal = AbortSignal.any([context.signal, this.stopper.signal]);
    this.origin = { namespace: this.spec.namespace ?? '', overrides: overridesOf(source) };
    const invisible = this.spec.invisibleDuration;
    this.invisibleMs =
      (invisible === undefined ? undefined : parseDuration(invisible)) ?? DEFAULT_INVISIBLE_MS;
  }

  begin(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort(new Error('the source stopped'));
    await this.loop;
  }

  private consumer(): SimpleConsumer {
    const { spec, secrets } = this;
    const endpoints =
      typeof spec.endpoints === 'string' ? spec.endpoints : spec.endpoints.join(';');
    const accessKey = secrets['credentials.accessKey'];
    const accessSecret = secrets['credentials.secretKey'];
    const securityToken = secrets['credentials.securityToken'];
    return new SimpleConsumer({
      endpoints,
      namespace: spec.namespace ?? '',
      consumerGroup: spec.consumerGroup,
      subscriptions: new Map([[spec.topic, spec.tag ?? '*']]),
      awaitDuration: AWAIT_DURATION_MS,
      requestTimeout: 5_000,
      logger: this.logger,
      ...(spec.tls === true ? { sslEnabled: true } : {}),
      ...(accessKey !== undefined && accessSecret !== undefined
        ? {
            sessionCredentials: {
              accessKey,
              accessSecret,
              ...(securityToken === undefined ? {} : { securityToken }),
            },
          }
        : {}),
    });
  }

  private logged(args: readonly unknown[]): void {
    if (this.receiving || this.signal.aborted) return;
    const line = logLine(args);
    this.lastLogged = line;
    const { reason } = describeRocketMQError(new Error(line));
    // What the SDK retries by itself shows as soon as it says what it is.
    if (reason !== 'UpstreamError') this.context.upstreamError(reason, `RocketMQ: ${line}`);
  }

  /** The client's startup, failing after STARTUP_TIMEOUT_MS with what it last logged. */
  private async startup(consumer: SimpleConsumer): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        const cause = this.lastLogged;
        const detail = cause === undefined ? '' : ` (${describeRocketMQError(cause).message})`;
        reject(
          new Error(`the client did not start within ${STARTUP_TIMEOUT_MS / 1000} s${detail}`),
        );
      }, STARTUP_TIMEOUT_MS);
    });
    try {
      await untilStopped(this.signal, Promise.race([consumer.startup(), timeout]));
    } catch (error) {
      // The SDK's startup error hides its cause; what it logged just before says it.
      const message = (error as Error).message;
      const cause = this.lastLogged;
      throw cause === undefined || message.includes(cause)
        ? error
        : new Error(`${message}; ${cause}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async run(): Promise<void> {
    for (let failures = 0; !this.signal.aborted;) {
      const consumer = this.consumer();
      this.receiving = false;
      this.lastLogged = undefined;
      try {
        await this.startup(consumer);
        // Started: the proxy knows the topic and the group and sent the client its settings.
        if (!this.signal.aborted) this.context.connected();
        while (!this.signal.aborted) {
          const messages = await untilStopped(
            this.signal,
            consumer.receive(RECEIVE_BATCH, this.invisibleMs),
          );
          if (messages === undefined) break;
          failures = 0;
          this.receiving = true;
          this.context.connected();
          if (messages.length === 0) continue;
          this.context.received(messages.length);
          await Promise.all(messages.map((message) => this.handle(consumer, message)));
        }
      } catch (error) {
        if (!this.signal.aborted) {
          failures++;
          const { reason, message } = describeRocketMQError(error);
          this.context.upstreamError(reason, `RocketMQ: ${message}`);
        }
      }
      await consumer.shutdown().catch(() => {});
      if (this.signal.aborted) return;
      if (!(await pauseAfterFailure(this.signal, failures))) return;
    }
  }

  /** Delivers one message, keeping it invisible meanwhile, and acknowledges it once accepted. */
  private async handle(consumer: SimpleConsumer, message: MessageView): Promise<void> {
    const { event } = messageToEvent(message, this.origin);
    // One call about the message at a time: an extension replaces its receipt handle.
    let calls: Promise<void> = Promise.resolve();
    const extend = setInterval(() => {
      calls = calls.then(() =>
        consumer.changeInvisibleDuration(message, this.invisibleMs).catch((error: unknown) => {
          this.context.log.warn(
            { err: error, messageId: message.messageId },
            'could not extend the invisible duration of a message being delivered',
          );
        }),
      );
    }, this.invisibleMs / 3);
    try {
      await this.context.deliver(event);
    } catch {
      // The source stopped: not acknowledged, the message comes again.
      return;
    } finally {
      clearInterval(extend);
    }
    await calls;
    try {
      await consumer.ack(message);
    } catch (error) {
      // It comes again once invisible no more, and is delivered twice (at least once).
      this.context.log.warn(
        { err: error, messageId: message.messageId },
        'could not acknowledge a delivered message',
      );
    }
  }
}

export const rocketmqSourceAdapter: PullingAdapter = {
  kind: 'RocketMQSource',
  start(source, secrets, context) {
    const run = new RocketMQSourceRun(source, secrets, context);
    run.begin();
    return run;
  },
};
