/** The CloudEvents the MnsSource and the ApiServerSource make (pure parts, docs/sources.md). */
import { describe, expect, it } from 'vitest';
import {
  changeEvent,
  guessPlural,
  ownedBy,
  selectorString,
  selfLink,
  type KubeObject,
} from '../../src/adapters/kubernetes/events.js';
import { describeKubeError } from '../../src/adapters/kubernetes/index.js';
import { describeMnsError, regionOf } from '../../src/adapters/mns/index.js';
import { messageToEvent, type ReceivedMessage } from '../../src/adapters/mns/messages.js';
import type { CloudEvent } from '../../src/core/event.js';

const dataOf = (event: CloudEvent): unknown => {
  const data = event.data;
  if (data?.kind !== 'bytes') throw new Error('expected bytes');
  return JSON.parse(Buffer.from(data.bytes).toString('utf8'));
};

const MESSAGE: ReceivedMessage = {
  MessageId: '5F290C926D472878-2-14D9529A8FA-200000001',
  MessageBody: 'order 7 paid',
  EnqueueTime: '1716809414944',
  DequeueCount: '2',
};
const ORIGIN = {
  accountId: '1234567890',
  region: 'cn-hangzhou',
  queue: 'orders',
  base64Decode: false,
  overrides: {},
};

describe('MNS messages as EventBridge events', () => {
  it('makes mns:Queue:SendMessage with the message id, enqueue time and dequeue count', () => {
    const event = messageToEvent(MESSAGE, 'REQ-1', ORIGIN);
    expect(event.attributes).toEqual({
      specversion: '1.0',
      id: MESSAGE.MessageId,
      source: 'acs:mns',
      type: 'mns:Queue:SendMessage',
      subject: 'acs:mns:cn-hangzhou:1234567890:queues/orders',
      datacontenttype: 'application/json',
      time: '2024-05-27T11:30:14.944Z',
      mnsdequeuecount: 2,
    });
    expect(dataOf(event)).toEqual({
      requestId: 'REQ-1',
      messageId: MESSAGE.MessageId,
      messageBody: 'order 7 paid',
    });
  });

  it('decodes base64 bodies when asked, keeping bytes that are not text in base64', () => {
    const decode = { ...ORIGIN, base64Decode: true };
    const text = Buffer.from('{"a":1}').toString('base64');
    expect(dataOf(messageToEvent({ ...MESSAGE, MessageBody: text }, 'r', decode))).toMatchObject({
      messageBody: '{"a":1}',
    });
    const binary = Buffer.from([0xff, 0x00, 0xfe]).toString('base64');
    const data = dataOf(messageToEvent({ ...MESSAGE, MessageBody: binary }, 'r', decode)) as Record<
      string,
      unknown
    >;
    expect(data.messageBody).toBeUndefined();
    expect(data.messageBodyBase64).toBe(binary);
    // Not base64 at all: kept as it came.
    expect(
      dataOf(messageToEvent({ ...MESSAGE, MessageBody: 'not base64!' }, 'r', decode)),
    ).toMatchObject({ messageBody: 'not base64!' });
    // Without the option, base64 stays base64.
    expect(dataOf(messageToEvent({ ...MESSAGE, MessageBody: text }, 'r', ORIGIN))).toMatchObject({
      messageBody: text,
    });
  });

  it('takes the message group as partitionkey, sets overrides last, and skips bad times', () => {
    const event = messageToEvent(
      { ...MESSAGE, MessageGroupId: 'customer-3', EnqueueTime: 'soon' },
      'r',
      { ...ORIGIN, overrides: { team: 'shop' } },
    );
    expect(event.attributes.partitionkey).toBe('customer-3');
    expect(event.attributes.team).toBe('shop');
    expect(event.attributes.time).toBeUndefined();
  });

  it('reads the region from an Alibaba Cloud endpoint, and classifies errors', () => {
    expect(regionOf({ endpoint: 'https://1.mns.cn-shanghai-internal.aliyuncs.com' })).toBe(
      'cn-shanghai',
    );
    expect(regionOf({ endpoint: 'http://127.0.0.1:9000' })).toBe('');
    expect(regionOf({ region: 'eu-central-1' })).toBe('eu-central-1');
    const named = (name: string): Error => Object.assign(new Error('x'), { name });
    expect(describeMnsError(named('MNSSignatureDoesNotMatchError')).reason).toBe(
      'AuthenticationFailed',
    );
    expect(describeMnsError(named('MNSQueueNotExistError')).reason).toBe('QueueNotFound');
    expect(describeMnsError(named('MNSAccessDeniedError')).reason).toBe('NotAuthorized');
    expect(
      describeMnsError(Object.assign(new Error('connect'), { code: 'ECONNREFUSED' })).reason,
    ).toBe('Unreachable');
    expect(describeMnsError(named('MNSInternalErrorError')).reason).toBe('UpstreamError');
  });
});

const POD: KubeObject = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web-1',
    namespace: 'shop',
    uid: 'u-1',
    resourceVersion: '42',
    ownerReferences: [
      { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: 'rs', controller: true },
    ],
  },
  spec: { containers: [] },
};

describe('Kubernetes changes as Knative ApiServerSource events', () => {
  it('Reference mode: an ObjectReference, self-link subject and the four extensions', () => {
    const event = changeEvent('update', POD, {
      source: 'https://10.96.0.1:443',
      mode: 'Reference',
      overrides: {},
    });
    expect(event.attributes).toEqual({
      specversion: '1.0',
      id: 'u-1/42/update',
      source: 'https://10.96.0.1:443',
      type: 'dev.knative.apiserver.ref.update',
      subject: '/apis/v1/namespaces/shop/pods/web-1',
      datacontenttype: 'application/json',
      kind: 'Pod',
      apiversion: 'v1',
      name: 'web-1',
      namespace: 'shop',
    });
    expect(JSON.stringify(dataOf(event))).toBe(
      '{"kind":"Pod","namespace":"shop","name":"web-1","apiVersion":"v1"}',
    );
  });

  it('Resource mode: the whole object; a cluster-scoped kind keeps the empty namespace', () => {
    const event = changeEvent('delete', POD, { source: 's', mode: 'Resource', overrides: {} });
    expect(event.attributes.type).toBe('dev.knative.apiserver.resource.delete');
    expect(dataOf(event)).toEqual(POD);
    const ns = changeEvent(
      'add',
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', uid: 'n' } },
      { source: 's', mode: 'Reference', overrides: { team: 'x' } },
    );
    expect(ns.attributes).toMatchObject({
      subject: '/apis/v1/namespaces//namespaces/shop',
      namespace: '',
      team: 'x',
    });
  });

  it('guesses plurals and self-links as Kubernetes and Knative do', () => {
    expect(['Pod', 'Ingress', 'NetworkPolicy', 'Endpoints'].map(guessPlural)).toEqual([
      'pods',
      'ingresses',
      'networkpolicies',
      'endpointses',
    ]);
    expect(selfLink('serving.knative.dev', 'Revision', 'ns', 'r')).toBe(
      '/apis/serving.knative.dev/versionUnknown/namespaces/ns/revisions/r',
    );
  });

  it('filters by the controller only, apiVersion and kind when given', () => {
    expect(ownedBy(POD, { kind: 'ReplicaSet' })).toBe(true);
    expect(ownedBy(POD, { apiVersion: 'apps/v1', kind: 'ReplicaSet' })).toBe(true);
    expect(ownedBy(POD, { apiVersion: 'apps/v1beta1' })).toBe(false);
    expect(ownedBy(POD, { kind: 'Job' })).toBe(false);
    const notController = {
      ...POD,
      metadata: { ...POD.metadata, ownerReferences: [{ kind: 'ReplicaSet', controller: false }] },
    };
    expect(ownedBy(notController, { kind: 'ReplicaSet' })).toBe(false);
  });

  it('writes label selectors as the API takes them, and classifies errors', () => {
    expect(
      selectorString({
        matchLabels: { app: 'web' },
        matchExpressions: [
          { key: 'env', operator: 'In', values: ['a', 'b'] },
          { key: 'x', operator: 'NotIn', values: ['c'] },
          { key: 'y', operator: 'Exists' },
          { key: 'z', operator: 'DoesNotExist' },
        ],
      }),
    ).toBe('app=web,env in (a,b),x notin (c),y,!z');
    expect(describeKubeError({ code: 401, body: '{"message":"Unauthorized"}' })).toEqual({
      reason: 'AuthenticationFailed',
      message: '401 Unauthorized',
    });
    expect(describeKubeError({ code: 403, body: { message: 'pods is forbidden' } }).reason).toBe(
      'NotAuthorized',
    );
    expect(describeKubeError(new Error('Unrecognized API version and kind: v1 Nope')).reason).toBe(
      'ResourceNotFound',
    );
    expect(
      describeKubeError(Object.assign(new Error('request failed'), { code: 'ECONNREFUSED' }))
        .reason,
    ).toBe('Unreachable');
  });
});
