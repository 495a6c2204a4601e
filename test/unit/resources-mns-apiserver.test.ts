/** Validation of the MnsSource and ApiServerSource specs (docs/sources.md), with field paths. */
import { describe, expect, it } from 'vitest';
import type { FieldProblem } from '../../src/core/errors.js';
import { REDACTED, redactSecrets } from '../../src/core/resources/secrets.js';
import type { Resource } from '../../src/core/resources/types.js';
import { validateSource } from '../../src/core/resources/validate.js';

type Json = Record<string, unknown>;

const fields = (problems: readonly FieldProblem[]): string[] => problems.map((p) => p.field);
const BROKER_SINK = { ref: { kind: 'Broker', name: 'default' } };

function mnsSource(spec: Json = {}): Json {
  return {
    apiVersion: 'sources.tributary.dev/v1alpha1',
    kind: 'MnsSource',
    metadata: { name: 'orders', namespace: 'default' },
    spec: {
      accountId: '1234567890',
      region: 'cn-hangzhou',
      queue: 'orders',
      credentials: { accessKey: { value: 'LTAI-id' }, secretKey: { env: 'MNS_SECRET' } },
      sink: BROKER_SINK,
      ...spec,
    },
  };
}

/** Knative's ApiServerSource example (knative.dev docs), with `spec` fields replaced by `spec`. */
function apiServerSource(spec: Json = {}): Json {
  return {
    apiVersion: 'sources.knative.dev/v1',
    kind: 'ApiServerSource',
    metadata: { name: 'testevents', namespace: 'default' },
    spec: {
      mode: 'Resource',
      resources: [{ apiVersion: 'v1', kind: 'Event' }],
      serviceAccountName: 'events-sa',
      sink: BROKER_SINK,
      ...spec,
    },
  };
}

describe('MnsSource spec', () => {
  it('accepts the documented spec, a custom endpoint without a region, and every option', () => {
    expect(validateSource(mnsSource())).toEqual([]);
    expect(
      validateSource(
        mnsSource({
          region: undefined,
          endpoint: 'http://127.0.0.1:9911',
          waitSeconds: 30,
          batchSize: 16,
          concurrency: 4,
          visibilityTimeout: 'PT45S',
          maxDequeueCount: 5,
          base64Decode: true,
          credentials: {
            accessKey: { value: 'id' },
            secretKey: { value: 'secret' },
            securityToken: { secretKeyRef: { name: 'sts', key: 'token' } },
          },
          delivery: { deadLetterSink: { uri: 'http://dls.example/' } },
          ceOverrides: { extensions: { team: 'orders' } },
        }),
      ),
    ).toEqual([]);
  });

  it.each<[string, Json, string[]]>([
    [
      'no account, no queue',
      { accountId: undefined, queue: undefined },
      ['spec.accountId', 'spec.queue'],
    ],
    ['neither region nor endpoint', { region: undefined }, ['spec.region']],
    [
      'an endpoint with a path',
      { endpoint: 'https://1.mns.cn-hangzhou.aliyuncs.com/x' },
      ['spec.endpoint'],
    ],
    ['an endpoint with a trailing slash', { endpoint: 'http://127.0.0.1:1/' }, ['spec.endpoint']],
    ['an endpoint that is not http', { endpoint: 'ftp://host' }, ['spec.endpoint']],
    ['a queue name MNS refuses', { queue: '1-starts-with-a-digit' }, ['spec.queue']],
    [
      'no credentials',
      { credentials: undefined },
      ['spec.credentials.accessKey', 'spec.credentials.secretKey'],
    ],
    [
      'a plain-text secret',
      { credentials: { accessKey: 'id', secretKey: { value: 's' } } },
      ['spec.credentials.accessKey'],
    ],
    ['waitSeconds above 30', { waitSeconds: 31 }, ['spec.waitSeconds']],
    ['waitSeconds not an integer', { waitSeconds: 1.5 }, ['spec.waitSeconds']],
    ['batchSize above 16', { batchSize: 17 }, ['spec.batchSize']],
    ['batchSize zero', { batchSize: 0 }, ['spec.batchSize']],
    ['concurrency zero', { concurrency: 0 }, ['spec.concurrency']],
    [
      'a visibility timeout under a second',
      { visibilityTimeout: 'PT0.5S' },
      ['spec.visibilityTimeout'],
    ],
    [
      'a visibility timeout over 12 hours',
      { visibilityTimeout: 'PT13H' },
      ['spec.visibilityTimeout'],
    ],
    [
      'maxDequeueCount without a dead-letter sink',
      { maxDequeueCount: 3 },
      ['spec.maxDequeueCount'],
    ],
    ['base64Decode not a boolean', { base64Decode: 'yes' }, ['spec.base64Decode']],
    ['an unknown field', { topic: 't' }, ['spec.topic']],
  ])('refuses %s', (_name, spec, expected) => {
    expect(fields(validateSource(mnsSource(spec)))).toEqual(expected);
  });

  it('never shows its credentials', () => {
    const redacted = redactSecrets(
      mnsSource({
        credentials: {
          accessKey: { value: 'id' },
          secretKey: { value: 'secret' },
          securityToken: { value: 'sts' },
        },
      }) as unknown as Resource,
    );
    expect(redacted.spec.credentials).toEqual({
      accessKey: { value: REDACTED },
      secretKey: { value: REDACTED },
      securityToken: { value: REDACTED },
    });
  });
});

describe('ApiServerSource spec', () => {
  it("accepts Knative's example, selectors, an owner, namespaces and each way to the cluster", () => {
    expect(validateSource(apiServerSource())).toEqual([]);
    expect(
      validateSource(
        apiServerSource({
          mode: 'Reference',
          resources: [
            {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              selector: {
                matchLabels: { 'app.kubernetes.io/name': 'shop', tier: '' },
                matchExpressions: [
                  { key: 'env', operator: 'In', values: ['prod', 'staging'] },
                  { key: 'canary', operator: 'DoesNotExist' },
                ],
              },
            },
          ],
          owner: { apiVersion: 'apps/v1', kind: 'ReplicaSet' },
          namespaces: ['shop', 'payments'],
          cluster: { server: 'https://10.0.0.1:6443', token: { env: 'KUBE_TOKEN' } },
        }),
      ),
    ).toEqual([]);
    expect(validateSource(apiServerSource({ namespaceSelector: {} }))).toEqual([]);
    expect(
      validateSource(
        apiServerSource({
          filters: [
            { prefix: { type: 'dev.knative.apiserver.ref.' } },
            { not: { exact: { namespace: 'kube-system' } } },
          ],
        }),
      ),
    ).toEqual([]);
    expect(
      validateSource(
        apiServerSource({ cluster: { kubeconfig: '/etc/kube/config', context: 'prod' } }),
      ),
    ).toEqual([]);
    expect(validateSource(apiServerSource({ cluster: { inCluster: true } }))).toEqual([]);
  });

  it.each<[string, Json, string[]]>([
    ['no resources', { resources: undefined }, ['spec.resources']],
    ['an empty resource list', { resources: [] }, ['spec.resources']],
    [
      'a resource without a kind',
      { resources: [{ apiVersion: 'v1' }] },
      ['spec.resources[0].kind'],
    ],
    ['an unknown mode', { mode: 'Ref' }, ['spec.mode']],
    [
      'a bad selector',
      {
        resources: [
          {
            apiVersion: 'v1',
            kind: 'Pod',
            selector: {
              matchLabels: { 'bad key!': 'x' },
              matchExpressions: [
                { key: 'a', operator: 'Like' },
                { key: 'b', operator: 'In', values: [] },
              ],
            },
          },
        ],
      },
      [
        'spec.resources[0].selector.matchLabels[bad key!]',
        'spec.resources[0].selector.matchExpressions[0].operator',
        'spec.resources[0].selector.matchExpressions[1].values',
      ],
    ],
    ['a namespace name Kubernetes refuses', { namespaces: ['Shop'] }, ['spec.namespaces[0]']],
    [
      'namespaces and a selector',
      { namespaces: ['a'], namespaceSelector: {} },
      ['spec.namespaces'],
    ],
    ['a token without a server', { cluster: { token: { value: 't' } } }, ['spec.cluster.server']],
    [
      'a server and a kubeconfig',
      { cluster: { server: 'https://k', kubeconfig: '/k' } },
      ['spec.cluster'],
    ],
    ['an unknown cluster field', { cluster: { user: 'me' } }, ['spec.cluster.user']],
    ['an owner that is not an object', { owner: 'ReplicaSet' }, ['spec.owner']],
    [
      'filters that are not Subscriptions API filters',
      { filters: [{ exact: { type: 'x' } }, { regex: { type: '.*' } }] },
      ['spec.filters[1].regex'],
    ],
  ])('refuses %s', (_name, spec, expected) => {
    expect(fields(validateSource(apiServerSource(spec)))).toEqual(expected);
  });

  it('never shows the cluster token', () => {
    const redacted = redactSecrets(
      apiServerSource({
        cluster: { server: 'https://k', token: { value: 't' }, caCert: { value: 'PEM' } },
      }) as unknown as Resource,
    );
    expect(redacted.spec.cluster).toEqual({
      server: 'https://k',
      token: { value: REDACTED },
      caCert: { value: REDACTED },
    });
  });
});
