/**
 * KafkaSource (reference/knative.md 4.6, docs/sources.md): one kafkajs consumer per source and
 * replica, in the source's consumer group, so that replicas share the topics' partitions. Each
 * record becomes a CloudEvent (records.ts) and goes to the sink through `PullContext.deliver`; a
 * partition's offset is committed only up to the records whose delivery resolved, so nothing is
 * committed before the sink accepted it, and a crash replays at most what was not committed.
 *
 * `ordering: ordered` (Knative's default) delivers a partition's records in offset order: one at a
 * time to a service, in runs of up to ORDERED_RUN records per write to a broker; `unordered`
 * delivers up to UNORDERED_IN_FLIGHT records of a partition at once and still commits in offset
 * order. While the sink refuses, `deliver` waits, the partition's batch waits
 * with it, and kafkajs fetches nothing more for it: consumption pauses, memory stays bounded.
 *
 * Upstream problems (unreachable brokers, failed authentication, a missing topic) show in the
 * source's `Connected` condition; the consumer is rebuilt with a growing pause until they pass.
 */
import { Kafka, type Consumer, type EachBatchPayload } from 'kafkajs';
import { errorChain, isUnknownTopic } from '../../backends/kafka/errors.js';
import { kafkaClientConfig, type SaslMechanism } from '../../backends/kafka/index.js';
import { KAFKA_KEY_TYPE_LABEL } from '../../core/resources/validate.js';
import type { Resource } from '../../core/resources/types.js';
import type {
  PullContext,
  PullingAdapter,
  PullingSource,
  ResolvedSecrets,
} from '../../sources/contracts.js';
import { overridesOf } from '../webhook-event.js';
import { recordToEvent, type KeyType, type RecordOrigin } from './records.js';
import { pauseAfterFailure } from '../pulling.js';

/** Records of one partition delivered at once under `ordering: unordered`. */
export const UNORDERED_IN_FLIGHT = 64;
/** Records of one partition a broker sink stores in one write under `ordering: ordered`. */
export const ORDERED_RUN = 100;
/** Partitions a replica works on at once (each one's batch is in memory). */
export const PARTITIONS_AT_ONCE = 16;
/** The first pause before the consumer is rebuilt after an upstream failure; it doubles to 30 s. */

interface KafkaSourceSpec {
  readonly bootstrapServers: readonly string[];
  readonly topics: readonly string[];
  readonly consumerGroup?: string;
  readonly initialOffset?: 'earliest' | 'latest';
  readonly ordering?: 'ordered' | 'unordered';
  readonly net?: {
    readonly sasl?: { readonly enable?: boolean };
    readonly tls?: { readonly enable?: boolean };
  };
}

/** The consumer group of a source without `spec.consumerGroup`, as Knative names it. */
export function defaultConsumerGroup(source: Resource): string {
  return `knative-kafka-source-${source.metadata.uid ?? source.metadata.name}`;
}

/** Why a kafkajs error happened, as a condition reason, and its message with what it wraps. */
export function describeKafkaError(error: unknown): { reason: string; message: string } {
  const chain = errorChain(error);
  const messages = [...new Set(chain.map((e) => e.message).filter((m) => m !== undefined))];
  const message = messages.join(': ') || String(error);
  const has = (test: (e: (typeof chain)[number]) => boolean): boolean => chain.some(test);
  let reason = 'UpstreamError';
  if (
    has(
      (e) =>
        e.name === 'KafkaJSSASLAuthenticationError' ||
        e.type === 'SASL_AUTHENTICATION_FAILED' ||
        e.type === 'ILLEGAL_SASL_STATE' ||
        e.type === 'UNSUPPORTED_SASL_MECHANISM',
    )
  ) {
    reason = 'AuthenticationFailed';
  } else if (has((e) => typeof e.type === 'string' && e.type.endsWith('_AUTHORIZATION_FAILED'))) {
    reason = 'NotAuthorized';
  } else if (isUnknownTopic(error)) {
    reason = 'TopicNotFound';
  } else if (
    has((e) =>
      /certificate|SSL routines|self[- ]signed|handshake|ERR_TLS|wrong version number/i.test(
        e.message ?? '',
      ),
    )
  ) {
    reason = 'TLSFailed';
  } else if (
    has(
      (e) =>
        e.name === 'KafkaJSConnectionError' ||
        e.name === 'KafkaJSConnectionClosedError' ||
        e.name === 'KafkaJSBrokerNotFound' ||
        e.name === 'KafkaJSRequestTimeoutError' ||
        /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|Connection (error|timeout)/i.test(
          e.message ?? '',
        ),
    )
  ) {
    reason = 'Unreachable';
  }
  return { reason, message };
}

function saslMechanism(type: string | undefined): SaslMechanism {
  return (type ?? 'PLAIN').toLowerCase() as SaslMechanism;
}

/** The offsets of one batch, and how far from its start they are all delivered. */
class BatchProgress {
  private readonly done = new Set<string>();
  private next = 0;

  constructor(private readonly offsets: readonly string[]) {}

  markDone(offset: string): void {
    this.done.add(offset);
    while (this.next < this.offsets.length && this.done.has(this.offsets[this.next]!)) this.next++;
  }

  /** The last offset such that it and everything before it in the batch are delivered. */
  lastContiguous(): string | undefined {
    return this.next === 0 ? undefined : this.offsets[this.next - 1];
  }
}

/**
 * Commits a partition's offset as deliveries resolve: one commit at a time, the next one taking
 * whatever was delivered meanwhile, so that a slow stream commits after every record and a fast
 * one commits in steps (a crash replays at most what one commit round-trip took).
 */
export class Committer {
  private committed: string | undefined;
  private wanted: string | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly commit: (last: string) => Promise<boolean>) {}

  request(last: string | undefined): void {
    if (last === undefined) return;
    this.wanted = last;
    // Idle with nothing new to commit: no drain (one that found nothing to do would end before
    // `running` is set, and `running` would then never be cleared).
    if (this.running === undefined && last !== this.committed) this.running = this.drain();
  }

  /** Resolves once `last` (and everything requested before) is committed or failed. */
  async flush(last: string | undefined): Promise<void> {
    this.request(last);
    while (this.running !== undefined) await this.running;
  }

  /** Commits until what is wanted is committed; always awaits before it ends. */
  private async drain(): Promise<void> {
    try {
      while (this.wanted !== undefined && this.wanted !== this.committed) {
        const last = this.wanted;
        if (!(await this.commit(last))) break;
        this.committed = last;
      }
    } finally {
      this.running = undefined;
    }
  }
}

class KafkaSourceRun implements PullingSource {
  private readonly kafka: Kafka;
  private readonly spec: KafkaSourceSpec;
  private readonly groupId: string;
  private readonly keyType: KeyType;
  private readonly overrides: Readonly<Record<string, string>>;
  /** The sink is a broker (which takes a run of records in one write). */
  private readonly brokerSink: boolean;
  private readonly stopper = new AbortController();
  private readonly signal: AbortSignal;
  private loop: Promise<void> = Promise.resolve();

  constructor(
    private readonly source: Resource,
    secrets: ResolvedSecrets,
    private readonly context: PullContext,
  ) {
    this.spec = source.spec as unknown as KafkaSourceSpec;
    this.signal = AbortSignal.any([context.signal, this.stopper.signal]);
    this.groupId = this.spec.consumerGroup ?? defaultConsumerGroup(source);
    this.keyType = (source.metadata.labels?.[KAFKA_KEY_TYPE_LABEL] ?? 'string') as KeyType;
    this.overrides = overridesOf(source);
    this.brokerSink = (source.spec as { sink?: { ref?: unknown } }).sink?.ref !== undefined;
    const net = this.spec.net;
    const tlsWanted = net?.tls?.enable === true;
    const saslWanted = net?.sasl?.enable === true;
    const ca = secrets['net.tls.caCert'];
    const cert = secrets['net.tls.cert'];
    const key = secrets['net.tls.key'];
    const { namespace, name } = source.metadata;
    this.kafka = new Kafka(
      kafkaClientConfig({
        clientId: `tributary-source-${namespace}-${name}`,
        brokers: this.spec.bootstrapServers.flatMap((s) => s.split(',').map((a) => a.trim())),
        requestTimeoutMs: 10_000,
        ...(tlsWanted
          ? {
              tls: {
                ...(ca === undefined ? {} : { ca }),
                ...(cert === undefined ? {} : { cert }),
                ...(key === undefined ? {} : { key }),
              },
            }
          : {}),
        ...(saslWanted
          ? {
              sasl: {
                mechanism: saslMechanism(secrets['net.sasl.type']),
                username: secrets['net.sasl.user'] ?? '',
                password: secrets['net.sasl.password'] ?? '',
              },
            }
          : {}),
      }),
    );
  }

  begin(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort(new Error('the source stopped'));
    await this.loop;
  }

  private async run(): Promise<void> {
    for (let failures = 0; !this.signal.aborted;) {
      const consumer = this.kafka.consumer({
        groupId: this.groupId,
        sessionTimeout: 10_000,
        rebalanceTimeout: 10_000,
        heartbeatInterval: 1_000,
        maxWaitTimeInMs: 500,
        allowAutoTopicCreation: false,
        retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2_000 },
      });
      const failure = await this.consume(consumer, () => {
        failures = 0;
      });
      await consumer.disconnect().catch(() => {});
      if (this.signal.aborted) return;
      failures++;
      const { reason, message } = describeKafkaError(failure);
      this.context.upstreamError(reason, `Kafka: ${message}`);
      if (!(await pauseAfterFailure(this.signal, failures))) return;
    }
  }

  /** Runs `consumer` until it crashes for good (resolves with why) or the source stops. */
  private async consume(consumer: Consumer, onJoin: () => void): Promise<unknown> {
    let crash: (error: unknown) => void = () => {};
    const crashed = new Promise<unknown>((resolve) => {
      crash = resolve;
    });
    const onAbort = (): void => crash(undefined);
    this.signal.addEventListener('abort', onAbort, { once: true });
    consumer.on(consumer.events.GROUP_JOIN, () => {
      onJoin();
      this.context.connected();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      const { error, restart } = event.payload;
      if (restart) {
        // kafkajs starts the consumer again by itself; the status shows why meanwhile.
        const { reason, message } = describeKafkaError(error);
        this.context.upstreamError(reason, `Kafka: ${message}`);
      } else {
        crash(error);
      }
    });
    try {
      await consumer.connect();
      await consumer.subscribe({
        topics: [...this.spec.topics],
        fromBeginning: this.spec.initialOffset === 'earliest',
      });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: PARTITIONS_AT_ONCE,
        eachBatch: (payload) => this.eachBatch(consumer, payload),
      });
      return await crashed;
    } catch (error) {
      return error;
    } finally {
      this.signal.removeEventListener('abort', onAbort);
    }
  }

  private async eachBatch(consumer: Consumer, payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const { topic, partition } = batch;
    const messages = batch.messages;
    if (messages.length === 0) return;
    const origin: RecordOrigin = {
      namespace: this.source.metadata.namespace,
      name: this.source.metadata.name,
      topic,
      partition,
      keyType: this.keyType,
      overrides: this.overrides,
    };
    // Ends the batch's deliveries when the source stops or the partition goes to another member.
    const batchAbort = new AbortController();
    const signal = AbortSignal.any([this.signal, batchAbort.signal]);
    const beat = setInterval(() => {
      if (!payload.isRunning() || payload.isStale()) batchAbort.abort(new Error('rebalanced'));
      else payload.heartbeat().catch(() => batchAbort.abort(new Error('rebalancing')));
    }, 1_000);
    const progress = new BatchProgress(messages.map((m) => m.offset));
    const committer = new Committer(async (last) => {
      payload.resolveOffset(last);
      try {
        await consumer.commitOffsets([
          { topic, partition, offset: (BigInt(last) + 1n).toString() },
        ]);
        return true;
      } catch {
        // revoked meanwhile, or Kafka away: the new owner or the next commit covers it
        return false;
      }
    });
    const deliverOne = async (index: number): Promise<void> => {
      const message = messages[index]!;
      const { event } = recordToEvent(message, origin);
      await this.context.deliver(event, { signal });
      progress.markDone(message.offset);
      committer.request(progress.lastContiguous());
    };
    /** Ordered: the batch in runs of ORDERED_RUN records, each run delivered as one. */
    const deliverInRuns = async (): Promise<void> => {
      for (let start = 0; start < messages.length; start += ORDERED_RUN) {
        if (signal.aborted || payload.isStale()) return;
        const run = messages.slice(start, start + ORDERED_RUN);
        this.context.received(run.length);
        await this.context.deliverAll(
          run.map((message) => recordToEvent(message, origin).event),
          { signal },
        );
        for (const message of run) progress.markDone(message.offset);
        committer.request(progress.lastContiguous());
      }
    };
    let nextIndex = 0;
    const worker = async (): Promise<void> => {
      while (nextIndex < messages.length && !signal.aborted && !payload.isStale()) {
        const index = nextIndex++;
        this.context.received(1);
        await deliverOne(index);
      }
    };
    try {
      if (this.spec.ordering !== 'unordered' && this.brokerSink) await deliverInRuns();
      else {
        const width = this.spec.ordering === 'unordered' ? UNORDERED_IN_FLIGHT : 1;
        await Promise.all(Array.from({ length: Math.min(width, messages.length) }, worker));
      }
    } catch {
      // stopped or rebalanced: what was delivered is committed below, the rest comes again
    } finally {
      clearInterval(beat);
    }
    await committer.flush(progress.lastContiguous());
  }
}

export const kafkaSourceAdapter: PullingAdapter = {
  kind: 'KafkaSource',
  start(source, secrets, context) {
    const run = new KafkaSourceRun(source, secrets, context);
    run.begin();
    return run;
  },
};
