/**
 * The raw counterpart of an MnsSource: an `@alicloud/mns` consumer, without Tributary, draining a
 * queue of pre-sent messages as a careful consumer does and as the MnsSource does
 * (src/adapters/mns/index.ts): one long-polling receive loop (`batchReceiveMessage`, at most
 * `batchSize` messages and never more than `concurrency` minus those being processed, `waitSeconds`
 * long polling), each message processed (its body parsed as JSON, counted by MessageId) and then
 * deleted with `deleteMessage`, up to `concurrency` messages in hand at once. No visibility
 * extension: processing is far shorter than the queue's visibility timeout.
 *
 * A warm-up of the same kind (another queue) runs first and is discarded. Messages/s = messages /
 * (the client's creation until the last message was deleted).
 *
 * Run as a child on the server core, in the server's place: `node mns-consumer-baseline.js
 * '<task as JSON>'`; prints one JSON line. The MNS server (test/support/mns-server.ts) runs in the
 * orchestrating process, which seeded the queues.
 */
import MNSClient, { type MNSMessage } from '@alicloud/mns';
import { now, runTask } from './proc.js';

/** One queue to drain: its name and how many messages it holds. */
export interface DrainSpec {
  readonly queue: string;
  readonly messages: number;
}

export interface MnsConsumerTask {
  readonly endpoint: string;
  readonly accountId: string;
  readonly accessKeyId: string;
  readonly accessKeySecret: string;
  readonly waitSeconds: number;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly measured: DrainSpec;
  readonly warmup?: DrainSpec;
  /** How long a phase may take, from the client's creation until its last delete. */
  readonly timeoutMs: number;
}

export interface DrainPhase {
  readonly messages: number;
  /** Distinct messages processed and deleted. */
  readonly received: number;
  readonly complete: boolean;
  /** A message handed out again (its visibility ran out before the delete). */
  readonly duplicates: number;
  readonly receives: number;
  /** Receives that came back empty (MessageNotExist after the long poll). */
  readonly emptyReceives: number;
  readonly deleteErrors: number;
  /** From the client's creation until the last message was deleted (or the timeout). */
  readonly seconds: number;
  readonly messagesPerSecond: number;
  /** From the client's creation until the first message was received. */
  readonly firstMessageMs: number;
  /** Messages after the first over the time after the first: the rate once consuming. */
  readonly afterFirstPerSecond: number;
  /** This process's CPU over `seconds`, as a share of one core, and per message. */
  readonly cpu: number;
  readonly cpuPerMessageUs: number;
}

export interface MnsConsumerResult extends DrainPhase {
  readonly warmup?: DrainPhase;
}

function errorCode(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? /^MNS(\w+?)Error$/.exec(name)?.[1] : undefined;
}

async function drain(task: MnsConsumerTask, spec: DrainSpec): Promise<DrainPhase> {
  const seen = new Set<string>();
  let duplicates = 0;
  let receives = 0;
  let emptyReceives = 0;
  let deleteErrors = 0;
  let firstAt = Number.NaN;
  let lastAt = Number.NaN;
  let inHand = 0;
  let stopped = false;
  let freed: (() => void) | undefined;
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const timer = setTimeout(finish, task.timeoutMs);

  const cpu0 = process.cpuUsage();
  const start = now();
  const client = new MNSClient(task.accountId, {
    accessKeyId: task.accessKeyId,
    accessKeySecret: task.accessKeySecret,
    endpoint: task.endpoint,
    connectTimeout: 10_000,
  });

  const processAndDelete = async (message: MNSMessage): Promise<void> => {
    // The processing: the body parsed, the message counted once.
    JSON.parse(message.MessageBody);
    const duplicate = seen.has(message.MessageId);
    try {
      await client.deleteMessage(spec.queue, message.ReceiptHandle);
    } catch {
      deleteErrors++;
      return;
    }
    if (duplicate) {
      duplicates++;
      return;
    }
    seen.add(message.MessageId);
    lastAt = now();
    if (seen.size === spec.messages) finish();
  };

  const loop = async (): Promise<void> => {
    while (!stopped) {
      while (inHand >= task.concurrency && !stopped) {
        await new Promise<void>((resolve) => (freed = resolve));
      }
      if (stopped) break;
      let messages: MNSMessage[];
      try {
        receives++;
        const response = await client.batchReceiveMessage(
          spec.queue,
          Math.min(task.batchSize, task.concurrency - inHand),
          task.waitSeconds,
        );
        messages = response.body ?? [];
      } catch (error) {
        if (errorCode(error) !== 'MessageNotExist') throw error;
        emptyReceives++;
        continue;
      }
      if (messages.length > 0 && Number.isNaN(firstAt)) firstAt = now();
      for (const message of messages) {
        inHand++;
        void processAndDelete(message).finally(() => {
          inHand--;
          freed?.();
        });
      }
    }
  };
  // The loop ends with the phase; a long poll still under way is left to end by itself.
  const looping = loop().catch((error: unknown) => {
    stopped = true;
    throw error;
  });
  await Promise.race([finished, looping]);
  stopped = true;
  freed?.();
  clearTimeout(timer);
  const received = seen.size;
  const complete = received === spec.messages;
  const end = complete ? lastAt : now();
  const used = process.cpuUsage(cpu0);
  const ms = Math.max(1e-3, end - start);
  const cpuMs = (used.user + used.system) / 1000;
  return {
    messages: spec.messages,
    received,
    complete,
    duplicates,
    receives,
    emptyReceives,
    deleteErrors,
    seconds: ms / 1000,
    messagesPerSecond: received / (ms / 1000),
    firstMessageMs: firstAt - start,
    afterFirstPerSecond: received > 1 ? (received - 1) / ((lastAt - firstAt) / 1000) : Number.NaN,
    cpu: cpuMs / ms,
    cpuPerMessageUs: (cpuMs * 1000) / Math.max(1, received),
  };
}

async function main(task: MnsConsumerTask): Promise<MnsConsumerResult> {
  const warmup = task.warmup === undefined ? undefined : await drain(task, task.warmup);
  if (warmup !== undefined && !warmup.complete) {
    throw new Error(`warm-up: ${warmup.received} of ${warmup.messages} messages drained`);
  }
  const measured = await drain(task, task.measured);
  return { ...measured, ...(warmup === undefined ? {} : { warmup }) };
}

runTask<MnsConsumerTask>(main);
