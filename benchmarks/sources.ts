/**
 * Sources, in two halves: GitHub webhook deliveries per second end to end (issue 8), against the
 * broker ingress measured in the same run with the same server setup, the same payload, the same
 * number of deliveries and the same connections; and Kafka records per second through a
 * KafkaSource (issue 9), against a raw kafkajs consumer measured in the same run
 * (lib/kafka-source.ts).
 *
 * GitHub webhooks: every measurement is a fresh server (on the server core) with one trigger on the broker
 * `default` whose subscriber is in the load process (lib/webhook-load.ts, on the generator core),
 * and a GitHubSource `bench` (secret token, sink: the broker `default`). The load sends a GitHub
 * `push` payload (from @octokit/webhooks-examples) N times over C keep-alive connections, closed
 * loop, after a warm-up of the same kind:
 *
 * - webhook: to `/webhooks/default/bench` as GitHub does (`X-GitHub-Event: push`, a new
 *   `X-GitHub-Delivery` UUID each time, `X-Hub-Signature-256`): signature check, the CloudEvent
 *   Knative's GitHubSource makes, the redelivery check, the broker write, the delivery ledger;
 * - ingress: to `/default/default` as a binary-mode CloudEvent with the same body (the type and
 *   source the GitHubSource gives its events): the broker write alone.
 *
 * Deliveries per second = N / (time from the first send until the subscriber has received all N).
 * Rounds interleave the two (alternating which goes first); medians of the rounds.
 *
 * Kafka source (lib/kafka-source.ts): N records (1 KB JSON) pre-produced to one topic of 4
 * partitions on the local Kafka (KAFKA_BROKERS, whatever the server's backend), read from the
 * earliest offset by a fresh consumer group each time: by a raw kafkajs consumer in the server's
 * place (eachBatch, offsets resolved after processing, committed as it goes), and by a KafkaSource
 * PUT to a fresh server (broker sink `ordered` and `unordered`, and the subscriber's URI as sink),
 * until the subscriber in the load process (lib/kafka-source-load.ts) has every record. Rounds
 * interleave the configurations; medians of the rounds.
 *
 * MNS source (lib/mns-source.ts), opt-in with `--only mns`: N messages (1 KB JSON) seeded into a
 * queue of the in-test MNS server running in this process, drained by a raw `@alicloud/mns`
 * consumer in the server's place and by an MnsSource PUT to a fresh server (URI sink, and the
 * broker with one trigger), until the subscriber has every message and the queue is empty.
 *
 * `--only github`, `--only kafka` or `--only mns` runs one part (a list runs several); the default
 * runs GitHub and Kafka.
 *
 *   npm run bench:sources [-- --quick] [--backends embedded,nats,kafka] [--only github,kafka,mns] [--cpu-prof]
 */
import { bodyDigest, GITHUB_EVENT_TYPE, pushPayload } from './lib/github-payload.js';
import {
  fixture,
  forEachBackend,
  INGRESS_PATH,
  log,
  percent,
  prewarmEvents,
  receiverPort,
  Servers,
  trigger,
  type GoalResult,
  type Options,
} from './lib/harness.js';
import { benchScript } from './lib/paths.js';
import { measureKafkaSource } from './lib/kafka-source.js';
import { measureMnsSource } from './lib/mns-source.js';
import { childResult, GENERATOR_CPU, spawnNode } from './lib/proc.js';
import { fmt, median, ratio } from './lib/stats.js';
import { figure, type BarPanel } from './lib/svg.js';
import type { DeliveryMode, DeliveryResult, DeliveryTask } from './lib/webhook-load.js';

const SOURCE = 'bench';
const REPOSITORY = 'acme/widgets';
const SECRET = 'tributary-bench-webhook-secret';
const WEBHOOK_PATH = `/webhooks/default/${SOURCE}`;
/** Webhook throughput end to end at 80 % or more of the broker ingress's (issue 8). */
const GOAL_SHARE = 0.8;

const LABELS: Readonly<Record<DeliveryMode, string>> = {
  webhook: 'GitHub webhook (GitHubSource)',
  ingress: 'broker ingress (binary CloudEvent)',
};

/** The GitHubSource every measured server gets, as the management API takes it. */
const githubSource = {
  kind: 'GitHubSource',
  spec: {
    ownerAndRepository: REPOSITORY,
    secretToken: { value: SECRET },
    sink: { ref: { kind: 'Broker', name: 'default' } },
  },
};

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}

interface SourceStatus {
  readonly conditions?: readonly Condition[];
  readonly webhookUrl?: string;
  readonly events?: Record<string, number>;
}

async function sourceStatus(url: string): Promise<SourceStatus> {
  const response = await fetch(`${url}/v1/namespaces/default/sources/${SOURCE}`);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET source: ${response.status} ${text}`);
  return (JSON.parse(text) as { status?: SourceStatus }).status ?? {};
}

/**
 * Creates the GitHubSource and waits until the server runs it (Ready): on NATS and Kafka the
 * source runtime learns of it through the control plane's watch, a moment after the PUT.
 */
async function createSource(url: string): Promise<void> {
  const response = await fetch(`${url}/v1/namespaces/default/sources/${SOURCE}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(githubSource),
  });
  const text = await response.text();
  if (response.status !== 200 && response.status !== 201) {
    throw new Error(`PUT source: ${response.status} ${text}`);
  }
  const deadline = performance.now() + 30_000;
  for (;;) {
    const status = await sourceStatus(url);
    const ready = status.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'True') return;
    if (ready?.reason === 'AdapterUnavailable') {
      throw new Error(
        'the server under test runs no GitHubSource adapter: dist/ is older than src/ (run "npm run build")',
      );
    }
    if (performance.now() > deadline) {
      throw new Error(`the GitHubSource is not Ready after 30 s: ${JSON.stringify(status)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The load (lib/webhook-load.ts) in a fresh process on the generator core. */
function runLoad(task: DeliveryTask): Promise<DeliveryResult> {
  const child = spawnNode(GENERATOR_CPU, [
    benchScript('lib/webhook-load.js'),
    JSON.stringify(task),
  ]);
  return childResult(child, `webhook load (${task.mode})`);
}

interface Run extends DeliveryResult {
  readonly round: number;
  /** The GitHubSource's counters after the run (received, forwarded, duplicates, ...). */
  readonly sourceEvents?: Record<string, number>;
}

interface Row {
  readonly mode: DeliveryMode;
  readonly delivered: number;
  readonly answered: number;
  readonly serverCpu: number;
  readonly cpuPerDeliveryUs: number;
  readonly responseP99: number;
  readonly deliveryP50: number;
  readonly deliveryP99: number;
  readonly non202: number;
  readonly incomplete: number;
  readonly duplicates: number;
}

function summarize(mode: DeliveryMode, runs: readonly Run[]): Row {
  const m = (f: (r: Run) => number): number => median(runs.map(f));
  return {
    mode,
    delivered: m((r) => r.deliveriesPerSecond),
    answered: m((r) => r.answeredPerSecond),
    serverCpu: m((r) => r.serverCpu),
    cpuPerDeliveryUs: m((r) => r.serverCpuPerDeliveryUs),
    responseP99: m((r) => r.responseMs.p99),
    deliveryP50: m((r) => r.deliveryMs.p50),
    deliveryP99: m((r) => r.deliveryMs.p99),
    non202: runs.reduce((n, r) => n + r.non202, 0),
    incomplete: runs.filter((r) => !r.complete).length,
    duplicates: runs.reduce((n, r) => n + r.duplicates, 0),
  };
}

/** The GitHub half: webhook deliveries against the broker ingress. */
async function measureWebhooks(backend: string, opts: Options, port: number) {
  // Quick mode keeps this half under about 30 s per backend: one round on NATS and Kafka.
  const rounds = opts.quick ? (backend === 'embedded' ? 2 : 1) : 3;
  const deliveries = opts.quick ? 2_000 : 10_000;
  const connections = 16;
  const warmup = prewarmEvents(opts);
  const timeoutMs = opts.quick ? 60_000 : 120_000;
  const body = pushPayload();
  const sourcesFixture = fixture('sources', [
    trigger('sources', [{ exact: { type: GITHUB_EVENT_TYPE } }], `http://127.0.0.1:${port}/`),
  ]);
  const servers = new Servers(backend, opts);
  const runs: Record<DeliveryMode, Run[]> = { webhook: [], ingress: [] };

  const once = async (mode: DeliveryMode, round: number): Promise<void> => {
    const prepared = await servers.start(sourcesFixture, `sources-${backend}-${mode}-${round}`);
    try {
      const url = prepared.server.url;
      await createSource(url);
      const result = await runLoad({
        mode,
        url,
        path: mode === 'webhook' ? WEBHOOK_PATH : INGRESS_PATH,
        secret: SECRET,
        ceSource: `https://github.com/${REPOSITORY}`,
        deliveries,
        warmup,
        connections,
        receiverPort: port,
        timeoutMs,
        serverPid: prepared.server.pid,
      });
      prepared.markWindow(result.windowMonotonicUs);
      const sourceEvents = mode === 'webhook' ? (await sourceStatus(url)).events : undefined;
      runs[mode].push({
        ...result,
        round,
        ...(sourceEvents === undefined ? {} : { sourceEvents }),
      });
      log(
        `${mode}: ${fmt(result.deliveriesPerSecond)} deliveries/s end to end, ${fmt(result.answeredPerSecond)} answered/s, ${result.non202} not 202${result.complete ? '' : ', INCOMPLETE'}`,
      );
    } finally {
      await prepared.stop();
    }
  };

  for (let round = 0; round < rounds; round++) {
    log(`sources round ${round + 1}/${rounds}`);
    // Alternating which goes first, so that a slow phase of the machine hits both alike.
    const order: DeliveryMode[] = round % 2 === 0 ? ['webhook', 'ingress'] : ['ingress', 'webhook'];
    for (const mode of order) await once(mode, round);
  }
  servers.dispose();

  const webhook = summarize('webhook', runs.webhook);
  const ingress = summarize('ingress', runs.ingress);
  const share = webhook.delivered / ingress.delivered;
  const rows = [webhook, ingress];
  const table = [
    `**GitHub webhooks** (issue 8): GitHub \`push\` deliveries end to end: the first \`push\` example of @octokit/webhooks-examples (${fmt(body.length)} bytes of JSON, the same bytes on both paths), ${fmt(deliveries)} per measurement over ${connections} keep-alive connections, closed loop, after ${fmt(warmup)} of warm-up; through one trigger (exact \`type\`) to a subscriber in the load process. Deliveries/s = deliveries / (first send until the subscriber has all of them). Each measurement is a fresh server with the same trigger and GitHubSource (secret token, broker sink); median of ${rounds} round${rounds > 1 ? 's' : ''}, webhook and ingress interleaved.`,
    '',
    '| path | delivered ev/s | x ingress | answered 202/s | server CPU | server CPU per event | p99 response | send to delivery p50 / p99 | not 202 |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map(
      (r) =>
        `| ${LABELS[r.mode]} | ${fmt(r.delivered)} | ${ratio(r.delivered / ingress.delivered)} | ${fmt(r.answered)} | ${percent(r.serverCpu)} | ${fmt(r.cpuPerDeliveryUs)} µs | ${fmt(r.responseP99)} ms | ${fmt(r.deliveryP50)} / ${fmt(r.deliveryP99)} ms | ${fmt(r.non202)} |`,
    ),
    '',
    `Webhook: \`POST ${WEBHOOK_PATH}\` with \`X-GitHub-Event: push\`, a new \`X-GitHub-Delivery\` UUID each time and \`X-Hub-Signature-256\`; the server checks the signature, makes the CloudEvent as Knative's GitHubSource does, checks the delivery id against the recent ids and the backend's delivery ledger, writes the event to the broker and records the id in the ledger. Ingress: \`POST ${INGRESS_PATH}\`, the same body as a binary-mode CloudEvent (\`ce-type: ${GITHUB_EVENT_TYPE}\`, \`ce-source: https://github.com/${REPOSITORY}\`, a new \`ce-id\` UUID each time). The ratio is what the webhook path costs on top of the broker write.`,
  ];
  const incomplete = webhook.incomplete + ingress.incomplete;
  if (incomplete > 0) {
    table.push(
      '',
      `**${incomplete} measurement(s) timed out before every delivery arrived** (their rate counts what arrived).`,
    );
  }
  const duplicates = webhook.duplicates + ingress.duplicates;
  if (duplicates > 0) table.push('', `${duplicates} duplicate deliveries (at least once).`);

  const goals: GoalResult[] = [
    {
      goal: `GitHub webhook deliveries/s end to end vs the broker ingress's (same payload, trigger, ${fmt(deliveries)} deliveries, ${connections} connections)`,
      target: `>= ${GOAL_SHARE}x`,
      measured: `${ratio(share)} (${fmt(webhook.delivered)} vs ${fmt(ingress.delivered)} ev/s)`,
      met: share >= GOAL_SHARE && webhook.non202 === 0 && webhook.incomplete === 0,
      margin: `${ratio(share / GOAL_SHARE)} of the target`,
    },
  ];

  const panel: BarPanel = {
    kind: 'bar',
    title: `Sources (${backend}): GitHub push deliveries`,
    yLabel: 'events per second',
    groups: ['delivered end to end', 'answered 202'],
    series: [
      { name: 'GitHub webhook', values: [webhook.delivered, webhook.answered] },
      { name: 'broker ingress', values: [ingress.delivered, ingress.answered] },
    ],
  };

  return {
    markdown: table.join('\n'),
    panel,
    caption: `GitHub: median of ${rounds} round(s) of ${fmt(deliveries)} deliveries over ${connections} connections; webhook ${ratio(share)} of the ingress end to end (goal >= ${GOAL_SHARE}x).`,
    goals,
    data: {
      rounds,
      deliveries,
      connections,
      warmup,
      timeoutMs,
      payload: {
        package: '@octokit/webhooks-examples',
        event: 'push',
        example: 0,
        bytes: body.length,
        sha256: bodyDigest(body),
      },
      share,
      rows,
      runs,
    },
  };
}

/** Both halves on one backend (`--only github` or `--only kafka`: one of them; MNS opt-in). */
async function measure(backend: string, opts: Options) {
  const wants = (half: string): boolean => opts.only === undefined || opts.only.includes(half);
  const port = await receiverPort();
  const github = wants('github') ? await measureWebhooks(backend, opts, port) : undefined;
  const kafka = wants('kafka') ? await measureKafkaSource(backend, opts, port) : undefined;
  const mns = opts.only?.includes('mns') ? await measureMnsSource(backend, opts, port) : undefined;
  const halves = [github, kafka, mns].filter((h) => h !== undefined);
  const svg =
    halves.length === 0
      ? undefined
      : figure(
          halves.map((h) => h.panel),
          `${halves.map((h) => h.caption).join(' ')} Server (and the raw consumer) on one core, load and subscriber on the other.`,
        );
  return {
    markdown: halves.map((h) => h.markdown).join('\n\n'),
    ...(svg === undefined ? {} : { svg }),
    goals: github?.goals ?? [],
    data: {
      ...(github === undefined ? {} : { github: github.data }),
      ...(kafka === undefined ? {} : { kafka: kafka.data }),
      ...(mns === undefined ? {} : { mns: mns.data }),
    },
  };
}

await forEachBackend('sources', measure);
