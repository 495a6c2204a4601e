/**
 * The MNS fake (test/support/mns-server.ts) through the real `@alicloud/mns` client: every call
 * below is signed, sent and parsed by the SDK itself. A few requests are hand-made with node:http
 * (signed here from the documented recipe) to reach the checks the SDK never fails by itself.
 * Waits are on the server's events, or on a long poll for a visibility that runs out.
 */
import MNSClient, { type MNSClientOptions } from '@alicloud/mns';
import { createHash, createHmac } from 'node:crypto';
import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MnsServer } from '../support/mns-server.js';

let server: MnsServer;

beforeEach(async () => {
  server = await MnsServer.start();
});

afterEach(async () => {
  await server.close();
});

function client(overrides: Partial<MNSClientOptions> = {}, target = server): MNSClient {
  return new MNSClient(target.accountId, {
    accessKeyId: target.accessKeyId,
    accessKeySecret: target.accessKeySecret,
    endpoint: target.endpoint,
    ...overrides,
  });
}

const md5 = (text: string): string =>
  createHash('md5').update(text, 'utf8').digest('hex').toUpperCase();

const named = (name: string) => expect.objectContaining({ name });

describe('MnsServer through @alicloud/mns', () => {
  it('sends, receives, redelivers after the visibility runs out, and deletes', async () => {
    server.createQueue('q', { visibilityTimeout: 1 });
    const mns = client();
    const body = 'héllo wörld 🙂 "quoted" \'single\'';
    const before = Date.now();
    const sent = await mns.sendMessage('q', { MessageBody: body });
    expect(sent.code).toBe(201);
    expect(sent.body).toEqual({
      MessageId: expect.stringMatching(/^[0-9A-F]{32}$/),
      MessageBodyMD5: md5(body),
    });

    const received = server.untilReceived('q', 1);
    const first = await mns.receiveMessage('q');
    await received;
    const after = Date.now();
    expect(first.code).toBe(200);
    const m = first.body;
    expect(m).toMatchObject({
      MessageId: sent.body.MessageId,
      MessageBody: body,
      MessageBodyMD5: md5(body),
      DequeueCount: '1',
      Priority: '8',
    });
    expect(m.ReceiptHandle).toMatch(/^8-[0-9A-F]{32}$/);
    const enqueued = Number(m.EnqueueTime);
    expect(enqueued).toBeGreaterThanOrEqual(before);
    expect(Number(m.FirstDequeueTime)).toBeGreaterThanOrEqual(enqueued);
    expect(Number(m.FirstDequeueTime)).toBeLessThanOrEqual(after);
    expect(Number(m.NextVisibleTime)).toBe(Number(m.FirstDequeueTime) + 1000);
    expect(server.messages('q')).toMatchObject([
      { messageId: m.MessageId, body, dequeueCount: 1, visible: false, deleted: false },
    ]);

    // The visibility (1 s) runs out while this long poll waits: the message comes back.
    const second = await mns.receiveMessage('q', 5);
    expect(Date.now()).toBeGreaterThanOrEqual(Number(m.NextVisibleTime));
    expect(second.body).toMatchObject({
      MessageId: m.MessageId,
      MessageBody: body,
      DequeueCount: '2',
      EnqueueTime: m.EnqueueTime,
      FirstDequeueTime: m.FirstDequeueTime,
    });
    expect(second.body.ReceiptHandle).not.toBe(m.ReceiptHandle);
    await expect(mns.deleteMessage('q', m.ReceiptHandle)).rejects.toEqual(
      named('MNSReceiptHandleErrorError'),
    );

    const emptied = server.untilEmpty('q');
    const deleted = await mns.deleteMessage('q', second.body.ReceiptHandle);
    expect(deleted.code).toBe(204);
    await emptied;
    expect(server.messages('q')).toEqual([]);
    expect(server.deletedCount('q')).toBe(1);
    await expect(mns.deleteMessage('q', second.body.ReceiptHandle)).rejects.toEqual(
      named('MNSMessageNotExistError'),
    );
    expect(server.requests.map((r) => `${r.method} ${r.status} ${r.code ?? ''}`)).toEqual([
      'POST 201 ',
      'GET 200 ',
      'GET 200 ',
      'DELETE 400 ReceiptHandleError',
      'DELETE 204 ',
      'DELETE 404 MessageNotExist',
    ]);
  });

  it('reads message bodies as XML text: entities resolved, raw markup rejected', async () => {
    server.createQueue('q');
    const mns = client();
    // The SDK does not escape bodies: what it sends is XML text, as with the real service.
    const sent = await mns.sendMessage('q', { MessageBody: 'a &amp; b &lt;c&gt;' });
    expect(sent.body.MessageBodyMD5).toBe(md5('a & b <c>'));
    expect((await mns.receiveMessage('q')).body.MessageBody).toBe('a & b <c>');
    await expect(mns.sendMessage('q', { MessageBody: 'a & b' })).rejects.toEqual(
      named('MNSMalformedXMLError'),
    );
    await expect(mns.sendMessage('q', { MessageBody: '' })).rejects.toEqual(
      named('MNSInvalidArgumentError'),
    );
    expect(server.messages('q').map((m) => m.body)).toEqual(['a & b <c>']);
  });

  it('batch-sends, batch-receives up to 16 and batch-deletes with a partial failure', async () => {
    server.createQueue('q');
    const mns = client();
    const bodies = Array.from({ length: 20 }, (_, i) => `m${i}`);
    const batch = await mns.batchSendMessage(
      'q',
      bodies.slice(0, 16).map((MessageBody) => ({ MessageBody })),
    );
    expect(batch.code).toBe(201);
    expect(batch.body.map((r) => r.MessageBodyMD5)).toEqual(bodies.slice(0, 16).map(md5));
    for (const body of bodies.slice(16)) server.send('q', body);
    await expect(
      mns.batchSendMessage(
        'q',
        bodies.slice(0, 17).map((MessageBody) => ({ MessageBody })),
      ),
    ).rejects.toEqual(named('MNSInvalidArgumentError'));
    await expect(mns.batchReceiveMessage('q', 17)).rejects.toEqual(
      named('MNSInvalidArgumentError'),
    );

    const full = await mns.batchReceiveMessage('q', 16);
    expect(full.body.map((m) => m.MessageBody)).toEqual(bodies.slice(0, 16));
    expect(full.body.every((m) => m.DequeueCount === '1')).toBe(true);
    const rest = await mns.batchReceiveMessage('q', 16);
    expect(rest.body.map((m) => m.MessageBody)).toEqual(bodies.slice(16));
    await expect(mns.batchReceiveMessage('q', 16)).rejects.toEqual(
      named('MNSMessageNotExistError'),
    );

    const all = await mns.batchDeleteMessage(
      'q',
      full.body.map((m) => m.ReceiptHandle),
    );
    expect(all.code).toBe(204);
    expect(all.body).toBeUndefined();
    expect(server.deletedCount('q')).toBe(16);

    const [m16, m17, m18] = rest.body.map((m) => m.ReceiptHandle);
    const replaced = await mns.changeMessageVisibility('q', m18!, 60);
    const partial = await mns.batchDeleteMessage('q', [m16!, '8-DEADBEEF', m18!, m17!, m16!]);
    expect(partial.code).toBe(404);
    expect(partial.body).toEqual([
      {
        ErrorCode: 'ReceiptHandleError',
        ErrorMessage: expect.any(String),
        ReceiptHandle: '8-DEADBEEF',
      },
      { ErrorCode: 'ReceiptHandleError', ErrorMessage: expect.any(String), ReceiptHandle: m18 },
      { ErrorCode: 'MessageNotExist', ErrorMessage: 'Message not exist.', ReceiptHandle: m16 },
    ]);
    expect(server.deletedCount('q')).toBe(18);
    expect(server.messages('q').map((m) => m.body)).toEqual(['m18', 'm19']);
    expect(server.messages('q')[0]?.receiptHandle).toBe(replaced.body.ReceiptHandle);
  });

  it('answers a long poll as soon as a message is sent', async () => {
    server.createQueue('q');
    const mns = client();
    const receiving = mns.receiveMessage('q', 20);
    await server.untilPolling('q');
    expect(server.requests).toEqual([]); // the poll is waiting, not answered
    const sentAt = Date.now();
    await mns.sendMessage('q', { MessageBody: 'wake' });
    const got = await receiving;
    expect(got.body.MessageBody).toBe('wake');
    expect(Date.now() - sentAt).toBeLessThan(5000); // sanity: far from the 20 s wait
    expect(server.pendingReceives('q')).toBe(0);
    // The poll was answered by the send itself, before the send's own answer.
    expect(server.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['GET 200', 'POST 201']);

    // A batch poll gets everything a batch send brings.
    const batch = mns.batchReceiveMessage('q', 16, 20);
    await server.untilPolling('q');
    await mns.batchSendMessage('q', [
      { MessageBody: 'x' },
      { MessageBody: 'y' },
      { MessageBody: 'z' },
    ]);
    expect((await batch).body.map((m) => m.MessageBody)).toEqual(['x', 'y', 'z']);
  });

  it('answers 404 MessageNotExist on an empty queue after the wait', async () => {
    server.createQueue('q');
    server.createQueue('slow', { pollingWaitSeconds: 1 });
    const mns = client();
    await expect(mns.receiveMessage('q')).rejects.toEqual(named('MNSMessageNotExistError'));
    let start = Date.now();
    await expect(mns.receiveMessage('q', 1)).rejects.toEqual(named('MNSMessageNotExistError'));
    expect(Date.now() - start).toBeGreaterThanOrEqual(990);
    // No waitseconds: the queue's PollingWaitSeconds.
    start = Date.now();
    await expect(mns.receiveMessage('slow')).rejects.toEqual(named('MNSMessageNotExistError'));
    expect(Date.now() - start).toBeGreaterThanOrEqual(990);
    expect(server.requests).toEqual([
      { method: 'GET', path: '/queues/q/messages', status: 404, code: 'MessageNotExist' },
      {
        method: 'GET',
        path: '/queues/q/messages?waitseconds=1',
        status: 404,
        code: 'MessageNotExist',
      },
      { method: 'GET', path: '/queues/slow/messages', status: 404, code: 'MessageNotExist' },
    ]);
    await expect(mns.receiveMessage('q', 31)).rejects.toEqual(named('MNSInvalidArgumentError'));
  });

  it('changes visibility with a new handle; the old one fails afterwards', async () => {
    server.createQueue('q'); // VisibilityTimeout 30 s
    const mns = client();
    await mns.sendMessage('q', { MessageBody: 'v' });
    const first = (await mns.receiveMessage('q')).body;
    const changedAt = Date.now();
    const changed = await mns.changeMessageVisibility('q', first.ReceiptHandle, 1);
    expect(changed.code).toBe(200);
    expect(changed.body.ReceiptHandle).toMatch(/^8-[0-9A-F]{32}$/);
    expect(changed.body.ReceiptHandle).not.toBe(first.ReceiptHandle);
    const next = Number(changed.body.NextVisibleTime);
    expect(next).toBeGreaterThanOrEqual(changedAt + 1000);
    expect(next).toBeLessThanOrEqual(Date.now() + 1000);
    await expect(mns.deleteMessage('q', first.ReceiptHandle)).rejects.toEqual(
      named('MNSReceiptHandleErrorError'),
    );
    await expect(mns.changeMessageVisibility('q', first.ReceiptHandle, 5)).rejects.toEqual(
      named('MNSReceiptHandleErrorError'),
    );
    await expect(mns.changeMessageVisibility('q', changed.body.ReceiptHandle, 0)).rejects.toEqual(
      named('MNSInvalidArgumentError'),
    );
    await expect(
      mns.changeMessageVisibility('q', changed.body.ReceiptHandle, 43201),
    ).rejects.toEqual(named('MNSInvalidArgumentError'));

    // Visible again after 1 s rather than 30 s.
    const again = (await mns.receiveMessage('q', 5)).body;
    expect(Date.now()).toBeGreaterThanOrEqual(next);
    expect(again.DequeueCount).toBe('2');
    await expect(mns.deleteMessage('q', changed.body.ReceiptHandle)).rejects.toEqual(
      named('MNSReceiptHandleErrorError'),
    );
    expect((await mns.deleteMessage('q', again.ReceiptHandle)).code).toBe(204);
  });

  it('rejects a handle whose visibility ran out', async () => {
    server.createQueue('q', { visibilityTimeout: 1 });
    const mns = client();
    const id = server.send('q', 'expiring');
    const got = (await mns.receiveMessage('q')).body;
    expect(got.MessageId).toBe(id);
    await server.untilVisible('q', id);
    await expect(mns.deleteMessage('q', got.ReceiptHandle)).rejects.toEqual(
      named('MNSReceiptHandleErrorError'),
    );
    await expect(mns.changeMessageVisibility('q', got.ReceiptHandle, 10)).rejects.toEqual(
      named('MNSReceiptHandleErrorError'),
    );
    expect(server.messages('q')).toMatchObject([{ messageId: id, visible: true, dequeueCount: 1 }]);
  });

  it('serves lower priority numbers first, FIFO within a priority', async () => {
    server.createQueue('q');
    const mns = client();
    for (const [MessageBody, Priority] of [
      ['a', 10],
      ['b', 1],
      ['c', undefined],
      ['d', 1],
      ['e', 16],
    ] as const) {
      await mns.sendMessage(
        'q',
        Priority === undefined ? { MessageBody } : { MessageBody, Priority },
      );
    }
    await expect(mns.sendMessage('q', { MessageBody: 'x', Priority: 17 })).rejects.toEqual(
      named('MNSInvalidArgumentError'),
    );
    const first = await mns.receiveMessage('q');
    expect(first.body).toMatchObject({ MessageBody: 'b', Priority: '1' });
    expect(first.body.ReceiptHandle).toMatch(/^1-/);
    const rest = await mns.batchReceiveMessage('q', 16);
    expect(rest.body.map((m) => [m.MessageBody, m.Priority])).toEqual([
      ['d', '1'],
      ['c', '8'],
      ['a', '10'],
      ['e', '16'],
    ]);
  });

  it('keeps delayed messages invisible until their delay ends', async () => {
    server.createQueue('q');
    const mns = client();
    const later = await mns.sendMessage('q', { MessageBody: 'later', DelaySeconds: 1 });
    await mns.sendMessage('q', { MessageBody: 'now' });
    expect((await mns.receiveMessage('q')).body.MessageBody).toBe('now');
    await expect(mns.peekMessage('q')).rejects.toEqual(named('MNSMessageNotExistError'));
    await expect(mns.receiveMessage('q')).rejects.toEqual(named('MNSMessageNotExistError'));
    const attributes = await mns.getQueueAttributes('q');
    expect(attributes.body).toMatchObject({
      QueueName: 'q',
      ActiveMessages: '0',
      InactiveMessages: '1',
      DelayMessages: '1',
    });
    const got = (await mns.receiveMessage('q', 5)).body;
    expect(got).toMatchObject({ MessageId: later.body.MessageId, DequeueCount: '1' });
    expect(Date.now()).toBeGreaterThanOrEqual(Number(got.EnqueueTime) + 1000);
  });

  it('peeks without changing anything', async () => {
    server.createQueue('q');
    const mns = client();
    server.send('q', 'p1');
    server.send('q', 'p2');
    const peeked = await mns.peekMessage('q');
    expect(peeked.body).toMatchObject({ MessageBody: 'p1', DequeueCount: '0' });
    expect(peeked.body.ReceiptHandle).toBeUndefined();
    const both = await mns.batchPeekMessage('q', 16);
    expect(both.body.map((m) => m.MessageBody)).toEqual(['p1', 'p2']);
    expect(server.messages('q').map((m) => [m.dequeueCount, m.visible])).toEqual([
      [0, true],
      [0, true],
    ]);
    expect((await mns.receiveMessage('q')).body).toMatchObject({
      MessageBody: 'p1',
      DequeueCount: '1',
    });
  });

  it('creates, describes and deletes queues; unknown queues are QueueNotExist', async () => {
    const mns = client();
    const created = await mns.createQueue('made', { VisibilityTimeout: 2, PollingWaitSeconds: 1 });
    expect(created.code).toBe(201);
    expect(created.headers.location).toBe(`${server.endpoint}/queues/made`);
    expect(
      (await mns.createQueue('made', { VisibilityTimeout: 2, PollingWaitSeconds: 1 })).code,
    ).toBe(204);
    await expect(mns.createQueue('made', { VisibilityTimeout: 3 })).rejects.toEqual(
      named('MNSQueueAlreadyExistError'),
    );
    await expect(mns.createQueue('bad', { VisibilityTimeout: 0 })).rejects.toEqual(
      named('MNSInvalidArgumentError'),
    );
    server.send('made', 'one');
    expect((await mns.getQueueAttributes('made')).body).toMatchObject({
      QueueName: 'made',
      VisibilityTimeout: '2',
      PollingWaitSeconds: '1',
      DelaySeconds: '0',
      MaximumMessageSize: '65536',
      ActiveMessages: '1',
      InactiveMessages: '0',
      DelayMessages: '0',
    });
    expect((await mns.deleteQueue('made')).code).toBe(204);
    await expect(mns.getQueueAttributes('made')).rejects.toEqual(named('MNSQueueNotExistError'));
    await expect(mns.receiveMessage('made')).rejects.toEqual(named('MNSQueueNotExistError'));
    await expect(mns.sendMessage('nope', { MessageBody: 'x' })).rejects.toEqual(
      named('MNSQueueNotExistError'),
    );
  });

  it('rejects a wrong secret, an unknown key id and a wrong or missing STS token', async () => {
    server.createQueue('q');
    await expect(
      client({ accessKeySecret: 'wrong' }).sendMessage('q', { MessageBody: 'x' }),
    ).rejects.toEqual(named('MNSSignatureDoesNotMatchError'));
    await expect(client({ accessKeyId: 'someone-else' }).receiveMessage('q')).rejects.toEqual(
      named('MNSAccessIDAuthErrorError'),
    );
    expect(server.messages('q')).toEqual([]);
    expect(server.requests.map((r) => [r.status, r.code])).toEqual([
      [403, 'SignatureDoesNotMatch'],
      [403, 'AccessIDAuthError'],
    ]);

    const sts = await MnsServer.start({ securityToken: 'sts-token' });
    try {
      sts.createQueue('q');
      const right = await client({ securityToken: 'sts-token' }, sts).sendMessage('q', {
        MessageBody: 'ok',
      });
      expect(right.code).toBe(201);
      await expect(
        client({ securityToken: 'other-token' }, sts).receiveMessage('q'),
      ).rejects.toEqual(named('MNSInvalidSecurityTokenError'));
      await expect(client({}, sts).receiveMessage('q')).rejects.toEqual(
        named('MNSInvalidSecurityTokenError'),
      );
      expect(sts.messages('q')).toMatchObject([{ body: 'ok', dequeueCount: 0 }]);
    } finally {
      await sts.close();
    }
  });

  it('checks Date, x-mns-version and Content-MD5 of hand-made requests', async () => {
    server.createQueue('q');
    const ok = await signed('GET', '/queues/q');
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('text/xml;charset=utf-8');
    expect(ok.headers['x-mns-request-id']).toMatch(/^[0-9A-F]{24}$/);
    expect(ok.headers['x-mns-version']).toBe('2015-06-06');
    expect(ok.body).toContain('<Queue xmlns="http://mns.aliyuncs.com/doc/v1/"><QueueName>q<');

    const stale = await signed('GET', '/queues/q', { date: new Date(Date.now() - 16 * 60_000) });
    expect(stale.status).toBe(400);
    expect(stale.body).toMatch(
      /^<\?xml version="1.0" encoding="UTF-8"\?><Error xmlns="http:\/\/mns.aliyuncs.com\/doc\/v1\/"><Code>TimeExpired<\/Code><Message>[^<]+<\/Message><RequestId>[0-9A-F]{24}<\/RequestId><HostId>[^<]+<\/HostId><\/Error>$/,
    );
    const undated = await raw('GET', '/queues/q', { date: 'yesterday', authorization: 'MNS a:b' });
    expect([undated.status, code(undated.body)]).toEqual([400, 'InvalidDateHeader']);
    const versionless = await signed('GET', '/queues/q', { version: false });
    expect([versionless.status, code(versionless.body)]).toEqual([400, 'MissingVersionHeader']);
    const body = '<Message><MessageBody>x</MessageBody></Message>';
    const digestOf = '<Message><MessageBody>y</MessageBody></Message>';
    const tampered = await signed('POST', '/queues/q/messages', { body, digestOf });
    expect([tampered.status, code(tampered.body)]).toEqual([400, 'InvalidDegist']);
    const fine = await signed('POST', '/queues/q/messages', { body });
    expect(fine.status).toBe(201);
    const unsigned = await raw('GET', '/queues/q', { date: new Date().toUTCString() });
    expect([unsigned.status, code(unsigned.body)]).toEqual([400, 'MissingAuthorizationHeader']);
    expect(server.messages('q').map((m) => m.body)).toEqual(['x']);
  });

  it('fails the next requests as told by failNext', async () => {
    server.createQueue('q');
    const mns = client();
    server.failNext(2, 503, 'ServiceUnavailable', 'POST');
    await expect(mns.sendMessage('q', { MessageBody: 'x' })).rejects.toEqual(
      named('MNSServiceUnavailableError'),
    );
    expect((await mns.getQueueAttributes('q')).code).toBe(200);
    await expect(mns.sendMessage('q', { MessageBody: 'x' })).rejects.toEqual(
      named('MNSServiceUnavailableError'),
    );
    expect((await mns.sendMessage('q', { MessageBody: 'x' })).code).toBe(201);
    server.failNext(1, 500, 'InternalError');
    await expect(mns.receiveMessage('q')).rejects.toEqual(named('MNSInternalErrorError'));
    expect((await mns.receiveMessage('q')).body.MessageBody).toBe('x');
    expect(server.requests.map((r) => `${r.method} ${r.status}`)).toEqual([
      'POST 503',
      'GET 200',
      'POST 503',
      'POST 201',
      'GET 500',
      'GET 200',
    ]);
  });

  it('ends pending long polls and waits on close', async () => {
    server.createQueue('q');
    server.send('q', 'stays');
    const polling = client().batchReceiveMessage('q', 16, 30);
    const first = await polling;
    expect(first.body).toHaveLength(1);
    const waiting = client().receiveMessage('q', 30);
    const failure = expect(waiting).rejects.toEqual(named('MNSMessageNotExistError'));
    await server.untilPolling('q');
    const emptied = expect(server.untilEmpty('q', 30_000)).rejects.toThrow('closed');
    await server.close();
    await failure;
    await emptied;
  });
});

// ---- hand-made requests ------------------------------------------------------------------------

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function code(body: string): string | undefined {
  return /<Code>([^<]*)<\/Code>/.exec(body)?.[1];
}

function raw(
  method: string,
  path: string,
  headers: Record<string, string>,
  body = '',
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const request = http.request(`${server.endpoint}${path}`, { method, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** A request signed as section 3.2 of the reference describes. */
function signed(
  method: string,
  path: string,
  options: { date?: Date; version?: boolean; body?: string; digestOf?: string } = {},
): Promise<RawAnswer> {
  const date = (options.date ?? new Date()).toUTCString();
  const headers: Record<string, string> = { date, 'x-mns-date': date };
  if (options.version !== false) headers['x-mns-version'] = '2015-06-06';
  if (options.body !== undefined) {
    headers['content-type'] = 'text/xml';
    const hex = createHash('md5')
      .update(options.digestOf ?? options.body)
      .digest('hex');
    headers['content-md5'] = Buffer.from(hex).toString('base64');
  }
  const mnsHeaders = Object.keys(headers)
    .filter((key) => key.startsWith('x-mns-'))
    .sort()
    .map((key) => `${key}:${headers[key]}\n`)
    .join('');
  const toSign = `${method}\n${headers['content-md5'] ?? ''}\n${headers['content-type'] ?? ''}\n${date}\n${mnsHeaders}${path}`;
  const signature = createHmac('sha1', server.accessKeySecret).update(toSign).digest('base64');
  headers.authorization = `MNS ${server.accessKeyId}:${signature}`;
  return raw(method, path, headers, options.body);
}
