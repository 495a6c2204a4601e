/**
 * The JSON Schemas of the HTTP surface, in one place. Route definitions use them as their fastify
 * `schema`, so the same objects validate requests and make the OpenAPI document (src/api/openapi.ts):
 *
 * - path parameters and query strings are validated by fastify (ajv) before a handler runs; a
 *   failure is a 400 problem naming the field (src/api/problem.ts);
 * - request bodies and the CloudEvents headers of the ingress are documentation only (the
 *   `x-request` part of a route schema, which fastify never compiles): resource bodies may be YAML,
 *   and src/core/resources/validate.ts stays the authority that reports every problem with its
 *   field path; ingress and webhook bodies are raw bytes that the codecs read;
 * - response schemas describe what is sent and never filter it (`documentOnlyResponses`).
 *
 * Shared schemas carry an `$id`; routes refer to them as `{ $ref: 'Name#' }` and the document lists
 * them under `components.schemas`.
 */
import type { FastifyInstance, FastifySchema } from 'fastify';
import { ErrorCodes } from '../core/errors.js';
import { SOURCE_KINDS } from '../core/resources/manifest.js';
import { MAX_NAME_LENGTH } from '../core/resources/validate.js';
import {
  BACKOFF_POLICIES,
  DELIVERY_FORMATS,
  DELIVERY_ORDERINGS,
  type ApiCollection,
} from '../core/resources/types.js';

type Schema = Record<string, unknown>;

/** The tags of the document, in the order the UI shows them. */
export const TAGS = [
  { name: 'ingress', description: 'CloudEvents into a broker (Knative broker ingress)' },
  { name: 'management', description: 'Brokers, triggers and sources; dead letters and replay' },
  { name: 'webhooks', description: 'Deliveries of GitHub and GitLab webhooks to their sources' },
  { name: 'operations', description: 'Health, readiness and this API description' },
] as const;
export type Tag = (typeof TAGS)[number]['name'];

// ---------------------------------------------------------------------------------------------
// Path parameters and query strings (validated by fastify)

/** A DNS-1123 label, as src/core/resources/validate.ts `validateName` checks it. */
export const DNS1123_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

/** A path parameter that is a DNS-1123 label (namespace or resource name). */
export function label(description: string): Schema {
  return {
    type: 'string',
    minLength: 1,
    maxLength: MAX_NAME_LENGTH,
    pattern: DNS1123_LABEL_PATTERN,
    description: `${description}: a DNS-1123 label (lower-case letters, digits and '-', at most ${MAX_NAME_LENGTH} characters)`,
  };
}

function params(properties: Record<string, Schema>): Schema {
  return { type: 'object', properties, required: Object.keys(properties) };
}

const namespace = label('Namespace');

export const NamespaceParams = params({ namespace });
export const ItemParams = params({ namespace, name: label('Name of the resource') });
export const TriggerParams = params({ namespace, name: label('Name of the trigger') });
export const IngressParams = params({ namespace, broker: label('Name of the broker') });
export const WebhookParams = params({ namespace, source: label('Name of the source') });

/** Largest page of dead letters. */
export const MAX_PAGE = 1000;

export const DeadLetterQuery: Schema = {
  type: 'object',
  properties: {
    limit: {
      type: 'integer',
      minimum: 1,
      maximum: MAX_PAGE,
      default: 100,
      description: 'Dead letters per page',
    },
    after: { type: 'string', description: 'The `next` of the previous page' },
  },
};

// ---------------------------------------------------------------------------------------------
// Shared schemas (components)

const ref = (id: string): Schema => ({ $ref: `${id}#` });
const stringMap = (description: string): Schema => ({
  type: 'object',
  additionalProperties: { type: 'string' },
  description,
});
const duration = (description: string): Schema => ({
  type: 'string',
  description: `${description} (ISO 8601 duration such as PT0.5S)`,
  examples: ['PT1S'],
});

export const Problem: Schema = {
  $id: 'Problem',
  type: 'object',
  description: 'An error, as application/problem+json (RFC 9457), with a stable code',
  required: ['type', 'title', 'status', 'code', 'detail'],
  properties: {
    type: { type: 'string', description: 'urn:tributary:error:<code>' },
    title: { type: 'string', description: "The code's fixed title" },
    status: { type: 'integer', description: 'The HTTP status' },
    code: { type: 'string', enum: Object.keys(ErrorCodes), description: 'See docs/errors.md' },
    detail: { type: 'string', description: 'What went wrong with this request' },
    errors: {
      type: 'array',
      description: 'Every problem found, each with its field path',
      items: {
        type: 'object',
        required: ['field', 'message'],
        properties: {
          field: { type: 'string', examples: ['spec.filters[1].prefix'] },
          message: { type: 'string' },
        },
      },
    },
  },
};

const ObjectMeta: Schema = {
  $id: 'ObjectMeta',
  type: 'object',
  description:
    'Kubernetes object metadata. Server-owned fields of a manifest read back (uid, generation, ...) are ignored when applied',
  properties: {
    name: label('Name'),
    namespace: { ...label('Namespace'), description: 'Namespace; defaults to the one of the URL' },
    labels: stringMap('Labels'),
    annotations: stringMap('Annotations'),
    uid: { type: 'string', readOnly: true, description: 'Assigned on creation' },
    generation: { type: 'integer', readOnly: true, description: 'Incremented when spec changes' },
    creationTimestamp: { type: 'string', format: 'date-time', readOnly: true },
  },
};

const Destination: Schema = {
  $id: 'Destination',
  type: 'object',
  description: 'Where events go: a broker (`ref`) or an HTTP service (`uri`)',
  properties: {
    ref: {
      type: 'object',
      required: ['kind', 'name'],
      properties: {
        apiVersion: { type: 'string' },
        kind: { type: 'string', examples: ['Broker'] },
        name: { type: 'string' },
        namespace: { type: 'string' },
      },
    },
    uri: { type: 'string', format: 'uri', description: 'Absolute http or https URL' },
    CACerts: { type: 'string', description: 'PEM certificates trusted for an https uri' },
    audience: { type: 'string' },
  },
};

const DeliverySpec: Schema = {
  $id: 'DeliverySpec',
  type: 'object',
  description: "Knative's delivery spec: retries, backoff and the dead-letter sink",
  properties: {
    deadLetterSink: ref('Destination'),
    retry: { type: 'integer', minimum: 0, description: 'Retries after the first attempt' },
    backoffPolicy: { type: 'string', enum: [...BACKOFF_POLICIES] },
    backoffDelay: duration('Base delay between attempts'),
    timeout: duration('Bound of each attempt'),
    retryAfterMax: duration('Longest Retry-After honoured'),
    format: { type: 'string', enum: [...DELIVERY_FORMATS] },
    ordering: { type: 'string', enum: [...DELIVERY_ORDERINGS] },
  },
};

const Condition: Schema = {
  type: 'object',
  required: ['type', 'status'],
  properties: {
    type: { type: 'string', examples: ['Ready'] },
    status: { type: 'string', enum: ['True', 'False', 'Unknown'] },
    reason: { type: 'string' },
    message: { type: 'string' },
    lastTransitionTime: { type: 'string', format: 'date-time' },
  },
};

const Status: Schema = {
  $id: 'Status',
  type: 'object',
  readOnly: true,
  description: 'Computed by the server; ignored when applied',
  properties: {
    conditions: { type: 'array', items: Condition },
    address: { type: 'object', properties: { url: { type: 'string', format: 'uri' } } },
    subscriberUri: { type: 'string' },
    deadLetterSinkUri: { type: 'string' },
    webhookUrl: { type: 'string' },
  },
  additionalProperties: true,
};

const SecretValue: Schema = {
  $id: 'SecretValue',
  type: 'object',
  description: 'A secret: exactly one of value, env and secretKeyRef. Never returned by the API',
  properties: {
    value: { type: 'string', description: 'The secret itself' },
    env: { type: 'string', description: "An environment variable of the server's process" },
    secretKeyRef: {
      type: 'object',
      description: 'The file <--secrets-dir>/<name>/<key>, as Kubernetes mounts a secret',
      required: ['name', 'key'],
      properties: {
        name: { type: 'string' },
        key: { type: 'string' },
        optional: { type: 'boolean' },
      },
    },
  },
};

/** A resource of `kind` in Knative's shape, with the given spec. */
function resource(
  id: string,
  apiVersion: string,
  spec: Schema,
  description: string,
  kinds = [id],
): Schema {
  return {
    $id: id,
    type: 'object',
    description,
    required: ['kind', 'metadata', ...(id === 'Broker' ? [] : ['spec'])],
    properties: {
      apiVersion: { type: 'string', examples: [apiVersion] },
      kind: { type: 'string', enum: kinds },
      metadata: ref('ObjectMeta'),
      spec,
      status: ref('Status'),
    },
  };
}

const filterDialect = {
  type: 'object',
  description:
    'One Subscriptions API filter: exactly one of exact, prefix, suffix (attribute maps), all, any (lists of filters), not (a filter), cesql (an expression)',
  properties: {
    exact: stringMap('Attributes equal to the values'),
    prefix: stringMap('Attributes starting with the values'),
    suffix: stringMap('Attributes ending with the values'),
    all: { type: 'array', items: { type: 'object' } },
    any: { type: 'array', items: { type: 'object' } },
    not: { type: 'object' },
    cesql: { type: 'string', description: 'A CloudEvents SQL expression' },
  },
};

const Broker = resource(
  'Broker',
  'eventing.knative.dev/v1',
  {
    type: 'object',
    properties: {
      delivery: ref('DeliverySpec'),
      config: { type: 'object', description: "Knative's backend config reference; kept, not used" },
      retention: duration('How long delivered events are kept for replay'),
    },
  },
  'A broker: a durable event log with an ingress address',
);

const Trigger = resource(
  'Trigger',
  'eventing.knative.dev/v1',
  {
    type: 'object',
    required: ['broker', 'subscriber'],
    properties: {
      broker: { type: 'string', description: 'The broker in the same namespace' },
      filter: {
        type: 'object',
        properties: { attributes: stringMap('Exact matches of attributes') },
      },
      filters: { type: 'array', items: filterDialect, description: 'All must match' },
      subscriber: ref('Destination'),
      delivery: ref('DeliverySpec'),
    },
  },
  'A trigger: delivers the events of a broker that pass its filters to a subscriber',
);

/** Every source kind's spec has these, besides its own fields. */
const commonSourceSpec = {
  sink: ref('Destination'),
  delivery: ref('DeliverySpec'),
  ceOverrides: {
    type: 'object',
    properties: { extensions: stringMap('Extension attributes added to every event') },
  },
  serviceAccountName: { type: 'string', description: 'Accepted from Knative manifests; unused' },
};

function sourceKind(
  kind: string,
  apiVersion: string,
  required: string[],
  own: Record<string, Schema>,
  description: string,
): Schema {
  return resource(
    kind,
    apiVersion,
    {
      type: 'object',
      required: ['sink', ...required],
      properties: { ...own, ...commonSourceSpec },
    },
    description,
  );
}

const strings = (description: string): Schema => ({
  type: 'array',
  items: { type: 'string' },
  description,
});
const secret = ref('SecretValue');
const accessKeys = {
  type: 'object',
  properties: { accessKey: secret, secretKey: secret, securityToken: secret },
};

const GitHubSource = sourceKind(
  'GitHubSource',
  'sources.knative.dev/v1alpha1',
  ['ownerAndRepository'],
  {
    ownerAndRepository: { type: 'string', examples: ['acme/shop'] },
    eventTypes: strings('GitHub webhook events (push, pull_request...); empty: all'),
    secretToken: secret,
    accessToken: secret,
    githubAPIURL: { type: 'string' },
    secure: { type: 'boolean' },
  },
  'GitHub webhook deliveries as CloudEvents',
);
const GitLabSource = sourceKind(
  'GitLabSource',
  'sources.knative.dev/v1alpha1',
  ['projectUrl'],
  {
    projectUrl: { type: 'string', format: 'uri' },
    eventTypes: strings('GitLab webhook triggers (push_events...)'),
    secretToken: secret,
    signingToken: secret,
    accessToken: secret,
    sslverify: { type: 'boolean' },
  },
  'GitLab webhook deliveries as CloudEvents',
);
const labelSelector = {
  type: 'object',
  properties: {
    matchLabels: stringMap('Labels'),
    matchExpressions: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          key: { type: 'string' },
          operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
          values: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
};
const ApiServerSource = sourceKind(
  'ApiServerSource',
  'sources.knative.dev/v1',
  ['resources'],
  {
    resources: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['apiVersion', 'kind'],
        properties: {
          apiVersion: { type: 'string' },
          kind: { type: 'string' },
          selector: labelSelector,
        },
      },
    },
    mode: { type: 'string', enum: ['Reference', 'Resource'] },
    owner: {
      type: 'object',
      properties: { apiVersion: { type: 'string' }, kind: { type: 'string' } },
    },
    namespaces: strings('Kubernetes namespaces watched'),
    namespaceSelector: labelSelector,
    filters: { type: 'array', items: filterDialect },
    cluster: {
      type: 'object',
      description: 'How to reach the cluster: server (with token, caCert), kubeconfig or inCluster',
      properties: {
        server: { type: 'string' },
        token: secret,
        caCert: secret,
        kubeconfig: { type: 'string' },
        context: { type: 'string' },
        inCluster: { type: 'boolean' },
        insecureSkipTLSVerify: { type: 'boolean' },
      },
    },
  },
  'Kubernetes API changes as CloudEvents',
);
const tlsOrSasl = (secrets: string[]): Schema => ({
  type: 'object',
  properties: {
    enable: { type: 'boolean' },
    ...Object.fromEntries(secrets.map((s) => [s, secret])),
  },
});
const KafkaSource = sourceKind(
  'KafkaSource',
  'sources.knative.dev/v1beta1',
  ['bootstrapServers', 'topics'],
  {
    bootstrapServers: strings('host:port addresses'),
    topics: strings('Kafka topics'),
    consumerGroup: { type: 'string' },
    consumers: { type: 'integer', minimum: 1 },
    initialOffset: { type: 'string', enum: ['earliest', 'latest'] },
    ordering: { type: 'string', enum: ['ordered', 'unordered'] },
    net: {
      type: 'object',
      properties: {
        sasl: tlsOrSasl(['user', 'password', 'type']),
        tls: tlsOrSasl(['cert', 'key', 'caCert']),
      },
    },
  },
  'Kafka records as CloudEvents',
);
const MnsSource = sourceKind(
  'MnsSource',
  'sources.tributary.dev/v1alpha1',
  ['accountId', 'queue', 'credentials'],
  {
    endpoint: { type: 'string', description: 'scheme://host[:port]; or give region' },
    accountId: { type: 'string' },
    region: { type: 'string', examples: ['cn-hangzhou'] },
    queue: { type: 'string' },
    credentials: accessKeys,
    waitSeconds: { type: 'integer', minimum: 0, maximum: 30 },
    batchSize: { type: 'integer', minimum: 1, maximum: 16 },
    concurrency: { type: 'integer', minimum: 1, maximum: 1000 },
    visibilityTimeout: duration('How long a received message stays invisible'),
    maxDequeueCount: { type: 'integer', minimum: 1 },
    base64Decode: { type: 'boolean' },
  },
  'Alibaba Cloud MNS queue messages as CloudEvents',
);
const RocketMQSource = sourceKind(
  'RocketMQSource',
  'sources.tributary.dev/v1alpha1',
  ['endpoints', 'topic', 'consumerGroup'],
  {
    endpoints: strings("host:port addresses of the RocketMQ 5 proxy's gRPC endpoint"),
    topic: { type: 'string' },
    consumerGroup: { type: 'string' },
    tag: { type: 'string', description: 'Tag filter expression' },
    namespace: { type: 'string' },
    credentials: accessKeys,
    tls: { type: 'boolean' },
    invisibleDuration: duration('How long a received message stays invisible'),
  },
  'RocketMQ 5 messages as CloudEvents',
);

const Source: Schema = {
  $id: 'Source',
  description: 'A source of any kind',
  oneOf: SOURCE_KINDS.map(ref),
};

const ResourceList: Schema = {
  $id: 'ResourceList',
  type: 'object',
  properties: {
    apiVersion: { type: 'string', enum: ['v1'] },
    kind: { type: 'string', enum: ['List'] },
    items: { type: 'array', items: { type: 'object' } },
  },
};

const CloudEvent: Schema = {
  $id: 'CloudEvent',
  type: 'object',
  description: 'A CloudEvent in the JSON format (structured content mode)',
  required: ['specversion', 'id', 'source', 'type'],
  properties: {
    specversion: { type: 'string', enum: ['1.0', '0.3'] },
    id: { type: 'string' },
    source: { type: 'string', format: 'uri-reference' },
    type: { type: 'string' },
    subject: { type: 'string' },
    time: { type: 'string', format: 'date-time' },
    datacontenttype: { type: 'string' },
    dataschema: { type: 'string', format: 'uri' },
    data: { description: 'The data, when it is JSON or text' },
    data_base64: { type: 'string', description: 'The data, when it is binary' },
  },
  additionalProperties: { description: 'Extension attributes' },
};

/** Shared schemas, added to the root instance so that every route can refer to them. */
export const SHARED_SCHEMAS: readonly Schema[] = [
  Problem,
  ObjectMeta,
  Destination,
  DeliverySpec,
  Status,
  SecretValue,
  Broker,
  Trigger,
  GitHubSource,
  GitLabSource,
  ApiServerSource,
  KafkaSource,
  MnsSource,
  RocketMQSource,
  Source,
  ResourceList,
  CloudEvent,
];

// ---------------------------------------------------------------------------------------------
// Request bodies (documentation only) with one example each

const brokerSink = { ref: { kind: 'Broker', name: 'default' } };

export const RESOURCE_EXAMPLES: Record<string, Schema> = {
  Broker: {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Broker',
    metadata: { name: 'orders', namespace: 'default' },
    spec: { delivery: { retry: 5, backoffPolicy: 'exponential', backoffDelay: 'PT0.5S' } },
  },
  Trigger: {
    apiVersion: 'eventing.knative.dev/v1',
    kind: 'Trigger',
    metadata: { name: 'new-orders', namespace: 'default' },
    spec: {
      broker: 'default',
      filters: [{ exact: { type: 'com.example.order.created' } }],
      subscriber: { uri: 'http://127.0.0.1:3000/orders' },
      delivery: { retry: 3, deadLetterSink: { uri: 'http://127.0.0.1:3000/dead' } },
    },
  },
  GitHubSource: {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitHubSource',
    metadata: { name: 'shop-repo', namespace: 'default' },
    spec: {
      ownerAndRepository: 'acme/shop',
      eventTypes: ['push', 'pull_request'],
      secretToken: { env: 'GITHUB_WEBHOOK_SECRET' },
      sink: brokerSink,
    },
  },
  GitLabSource: {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitLabSource',
    metadata: { name: 'shop-project', namespace: 'default' },
    spec: {
      projectUrl: 'https://gitlab.com/acme/shop',
      eventTypes: ['push_events', 'merge_requests_events'],
      secretToken: { env: 'GITLAB_WEBHOOK_SECRET' },
      sink: brokerSink,
    },
  },
  ApiServerSource: {
    apiVersion: 'sources.knative.dev/v1',
    kind: 'ApiServerSource',
    metadata: { name: 'pod-events', namespace: 'default' },
    spec: {
      mode: 'Reference',
      resources: [{ apiVersion: 'v1', kind: 'Pod' }],
      namespaces: ['shop'],
      cluster: { server: 'https://127.0.0.1:6443', token: { env: 'KUBE_TOKEN' } },
      sink: brokerSink,
    },
  },
  KafkaSource: {
    apiVersion: 'sources.knative.dev/v1beta1',
    kind: 'KafkaSource',
    metadata: { name: 'payments', namespace: 'default' },
    spec: {
      bootstrapServers: ['127.0.0.1:9092'],
      topics: ['payments'],
      consumerGroup: 'tributary-payments',
      initialOffset: 'latest',
      sink: brokerSink,
    },
  },
  MnsSource: {
    apiVersion: 'sources.tributary.dev/v1alpha1',
    kind: 'MnsSource',
    metadata: { name: 'invoices', namespace: 'default' },
    spec: {
      region: 'cn-hangzhou',
      accountId: '1234567890',
      queue: 'invoices',
      credentials: { accessKey: { env: 'MNS_ACCESS_KEY' }, secretKey: { env: 'MNS_SECRET_KEY' } },
      sink: brokerSink,
    },
  },
  RocketMQSource: {
    apiVersion: 'sources.tributary.dev/v1alpha1',
    kind: 'RocketMQSource',
    metadata: { name: 'shipments', namespace: 'default' },
    spec: {
      endpoints: ['127.0.0.1:8081'],
      topic: 'shipments',
      consumerGroup: 'tributary-shipments',
      sink: brokerSink,
    },
  },
};

/** The documented body of PUT on each collection. */
export const RESOURCE_BODIES: Record<ApiCollection, Schema> = {
  // allOf: a sibling of a bare $ref would be dropped when the reference is resolved.
  brokers: { allOf: [ref('Broker')], examples: [RESOURCE_EXAMPLES.Broker] },
  triggers: { allOf: [ref('Trigger')], examples: [RESOURCE_EXAMPLES.Trigger] },
  sources: {
    allOf: [ref('Source')],
    examples: SOURCE_KINDS.map((kind) => RESOURCE_EXAMPLES[kind]),
  },
};

export const ApplyBody: Schema = {
  description:
    'One resource, a list of resources, a List with items, or (as YAML) several documents separated by ---',
  oneOf: [
    { type: 'object', description: 'Any resource: Broker, Trigger or a source kind' },
    { type: 'array', items: { type: 'object' } },
    { type: 'object', properties: { kind: { enum: ['List'] }, items: { type: 'array' } } },
  ],
  examples: [
    [
      RESOURCE_EXAMPLES.Broker,
      {
        apiVersion: 'eventing.knative.dev/v1',
        kind: 'Trigger',
        metadata: { name: 'order-audit', namespace: 'default' },
        spec: { broker: 'orders', subscriber: { uri: 'http://127.0.0.1:3000/audit' } },
      },
    ],
  ],
};

export const RedriveBody: Schema = {
  type: 'object',
  description: 'The dead letters to redrive; no body, or no ids, redrives them all',
  properties: { ids: { type: 'array', items: { type: 'string' } } },
  examples: [{ ids: ['17', '18'] }],
};

export const ReplayBody: Schema = {
  type: 'object',
  required: ['from'],
  properties: { from: { type: 'string', format: 'date-time' } },
  examples: [{ from: '2026-01-31T12:00:00Z' }],
};

/** Also accepted as YAML: application/x-yaml, text/yaml and text/x-yaml. */
export const RESOURCE_CONSUMES = ['application/json', 'application/yaml'];

/** The three CloudEvents HTTP content modes of the ingress. */
export const IngressBody: Schema = {
  content: {
    'application/cloudevents+json': {
      schema: {
        allOf: [ref('CloudEvent')],
        description: 'Structured mode: one event',
        examples: [
          {
            specversion: '1.0',
            id: 'order-1042',
            source: '/shop/orders',
            type: 'com.example.order.created',
            datacontenttype: 'application/json',
            data: { order: 1042, total: 99.5 },
          },
        ],
      },
    },
    'application/cloudevents-batch+json': {
      schema: {
        type: 'array',
        items: ref('CloudEvent'),
        description: 'Batch mode: any number of events, stored together',
      },
    },
    '*/*': {
      schema: {
        type: 'string',
        format: 'binary',
        description:
          "Binary mode: the event's data, any content type; the attributes are the ce- headers (ce-specversion, ce-id, ce-source, ce-type required)",
      },
    },
  },
};

export const IngressHeaders: Schema = {
  type: 'object',
  properties: {
    'ce-specversion': { type: 'string', description: 'Binary mode: the spec version (1.0)' },
    'ce-id': { type: 'string', description: 'Binary mode: the event id' },
    'ce-source': { type: 'string', description: 'Binary mode: the event source' },
    'ce-type': { type: 'string', description: 'Binary mode: the event type' },
  },
};

export const WebhookBody: Schema = {
  content: {
    'application/json': {
      schema: { type: 'object', description: 'The webhook payload, kept byte for byte' },
    },
    'application/x-www-form-urlencoded': { schema: { type: 'string' } },
  },
};

export const WebhookHeaders: Schema = {
  type: 'object',
  properties: {
    'x-github-event': { type: 'string', description: 'GitHub: the event name' },
    'x-github-delivery': { type: 'string', description: 'GitHub: the delivery id' },
    'x-hub-signature-256': { type: 'string', description: 'GitHub: HMAC of the body' },
    'x-gitlab-event': { type: 'string', description: 'GitLab: the event name' },
    'x-gitlab-token': { type: 'string', description: 'GitLab: the secret token' },
  },
};

// ---------------------------------------------------------------------------------------------
// Responses

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request: the problem names each field',
  401: 'The signature or token is missing or wrong',
  404: 'Not found',
  405: 'Method not allowed (see Allow)',
  409: 'Changed concurrently; retry',
  413: 'The body is larger than the limit',
  415: 'Unsupported content type',
  500: 'Internal error',
  502: "The source's direct sink did not accept the event",
  503: 'Unavailable now; retry after Retry-After',
};

/** Error responses: each one is a problem (application/problem+json). */
export function problems(...statuses: number[]): Record<number, Schema> {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: STATUS_TEXT[status] ?? 'Error',
        content: { 'application/problem+json': { schema: ref('Problem') } },
      },
    ]),
  );
}

export const json = (description: string, schema: Schema): Schema => ({
  description,
  content: { 'application/json': { schema } },
});
export const empty = (description: string): Schema => ({ description, type: 'null' });
export { ref };

export const ApplyResult: Schema = {
  type: 'object',
  properties: {
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          kind: { type: 'string' },
          namespace: { type: 'string' },
          name: { type: 'string' },
          action: { type: 'string', enum: ['created', 'updated', 'unchanged'] },
          resource: { type: 'object' },
        },
      },
    },
  },
};

export const DeadLetterPage: Schema = {
  type: 'object',
  properties: {
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          id: { type: 'string' },
          deadLetteredAt: { type: 'string', format: 'date-time' },
          reason: { type: 'string' },
          attempts: { type: 'integer' },
          destination: { type: 'string' },
          lastStatus: { type: 'integer' },
          event: ref('CloudEvent'),
        },
      },
    },
    total: { type: 'integer' },
    next: { type: 'string', description: 'Pass as `after` for the next page; absent on the last' },
  },
};

// ---------------------------------------------------------------------------------------------
// Route schemas

/** The parts of a request that are documented but not validated by fastify. */
export const DOCUMENTED_REQUEST = 'x-request';

export interface DocumentedRequest {
  readonly body?: Schema;
  readonly headers?: Schema;
  readonly consumes?: readonly string[];
  /** The body may be left out (OpenAPI `requestBody.required: false`). */
  readonly optionalBody?: boolean;
}

export interface RouteDoc {
  readonly tag: Tag;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  readonly params?: Schema;
  readonly querystring?: Schema;
  readonly request?: DocumentedRequest;
  readonly response: Record<string | number, Schema>;
}

/** A fastify route schema: params and querystring validated, the request body documented. */
export function routeSchema(doc: RouteDoc): FastifySchema {
  return {
    tags: [doc.tag],
    operationId: doc.operationId,
    summary: doc.summary,
    ...(doc.description === undefined ? {} : { description: doc.description }),
    ...(doc.params === undefined ? {} : { params: doc.params }),
    ...(doc.querystring === undefined ? {} : { querystring: doc.querystring }),
    ...(doc.request === undefined ? {} : { [DOCUMENTED_REQUEST]: doc.request }),
    response: doc.response,
  };
}

/**
 * In this plugin's scope, responses are sent as they are (JSON.stringify): their schemas describe
 * them for the document and never drop a field the schema does not list.
 */
export function documentOnlyResponses(app: FastifyInstance): void {
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}
