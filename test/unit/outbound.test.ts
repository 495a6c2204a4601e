import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { send, setOutboundPolicy } from '../../src/broker/http-sender.js';
import { isRetryable, nextStep, resolveDelivery } from '../../src/core/delivery.js';
import {
  classifyHost,
  classifyIp,
  DEFAULT_OUTBOUND,
  OutboundPolicy,
  outboundRuleProblem,
  type OutboundOptions,
} from '../../src/core/outbound.js';
import { validateOutbound } from '../../src/core/resources/validate.js';

/** The host of `url` as the delivery code sees it: WHATWG URL's normalized hostname. */
const hostOf = (url: string): string => new URL(url).hostname;

describe('classifyIp', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['::1', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['172.32.0.1', 'public'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'],
    ['100.128.0.1', 'public'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['169.254.170.2', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['FD00:EC2:0:0:0:0:0:254', 'metadata'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['8.8.8.8', 'public'],
    ['2001:4860:4860::8888', 'public'],
    // IPv6 forms that reach an IPv4 address: classified as that address.
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:a9fe:a9fe', 'metadata'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::a9fe:a9fe', 'metadata'],
    ['64:ff9b::169.254.1.1', 'link-local'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::808:808', 'public'],
    ['2002:a9fe:a9fe::1', 'metadata'],
    ['::a9fe:a9fe', 'metadata'],
  ])('%s is %s', (ip, cls) => {
    expect(classifyIp(ip)).toBe(cls);
  });

  it.each([
    'example.com',
    'localhost',
    '1.2.3',
    '1.2.3.256',
    '::g',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
  ])('%s is not an IP literal', (text) => {
    expect(classifyIp(text)).toBeUndefined();
  });
});

describe('classifyHost of URL hosts', () => {
  it.each([
    // WHATWG URL turns hexadecimal, octal, dotless and short forms into a dotted quad.
    ['http://0xa9fea9fe/', '169.254.169.254', 'metadata'],
    ['http://0251.0376.0251.0376/', '169.254.169.254', 'metadata'],
    ['http://2852039166/', '169.254.169.254', 'metadata'],
    ['http://169.254.43518/', '169.254.169.254', 'metadata'],
    ['http://0x7f.1/', '127.0.0.1', 'loopback'],
    ['http://0/', '0.0.0.0', 'unspecified'],
    // IPv6 hosts keep their brackets, and embedded dotted quads are rewritten in hex.
    ['http://[::ffff:169.254.169.254]/', '[::ffff:a9fe:a9fe]', 'metadata'],
    ['http://[64:ff9b::169.254.169.254]/', '[64:ff9b::a9fe:a9fe]', 'metadata'],
    ['http://[fd00:ec2::254]:8080/', '[fd00:ec2::254]', 'metadata'],
    ['http://[::1]/', '[::1]', 'loopback'],
    ['http://METADATA.google.internal./', 'metadata.google.internal.', 'metadata'],
    ['https://metadata.goog/', 'metadata.goog', 'metadata'],
    ['http://example.com/', 'example.com', undefined],
    ['http://localhost:8080/', 'localhost', undefined],
  ])('%s has host %s, class %s', (url, host, cls) => {
    expect(hostOf(url)).toBe(host);
    expect(classifyHost(hostOf(url))).toBe(cls);
  });
});

describe('OutboundPolicy', () => {
  const policy = (options: Partial<OutboundOptions> = {}): OutboundPolicy =>
    new OutboundPolicy({ ...DEFAULT_OUTBOUND, ...options });
  const allowed = (p: OutboundPolicy, url: string): boolean | 'resolve' =>
    p.checkHost(hostOf(url)).allowed;

  it('by default allows public, private and loopback, and refuses link-local and metadata', () => {
    const p = policy();
    expect(allowed(p, 'http://8.8.8.8/')).toBe(true);
    expect(allowed(p, 'http://127.0.0.1:9/')).toBe(true);
    expect(allowed(p, 'http://[::1]/')).toBe(true);
    expect(allowed(p, 'http://10.0.0.1/')).toBe(true);
    expect(allowed(p, 'http://169.254.1.1/')).toBe(false);
    expect(allowed(p, 'http://[fe80::1]/')).toBe(false);
    expect(allowed(p, 'http://0xa9fea9fe/')).toBe(false);
    expect(allowed(p, 'http://[::ffff:169.254.169.254]/')).toBe(false);
    expect(allowed(p, 'http://100.100.100.200/')).toBe(false);
    expect(allowed(p, 'http://[fd00:ec2::254]/')).toBe(false);
    expect(allowed(p, 'http://metadata.google.internal/')).toBe(false);
    expect(allowed(p, 'http://0.0.0.0/')).toBe(false);
    expect(allowed(p, 'http://224.0.0.1/')).toBe(false);
    expect(allowed(p, 'http://example.com/')).toBe('resolve');
  });

  it('says why and which option would allow it', () => {
    const verdict = policy().checkHost('169.254.169.254');
    expect(verdict).toEqual({
      allowed: false,
      reason: expect.stringMatching(
        /169\.254\.169\.254 is a cloud metadata address.*--outbound-allow/,
      ),
    });
    expect(policy({ allowPrivate: false }).checkHost('127.0.0.1')).toEqual({
      allowed: false,
      reason: expect.stringMatching(/loopback.*--outbound-allow-private/),
    });
  });

  it('refuses loopback and private ranges when allowPrivate is false', () => {
    const p = policy({ allowPrivate: false });
    for (const url of [
      'http://127.0.0.1/',
      'http://[::1]/',
      'http://10.0.0.1/',
      'http://192.168.0.1/',
      'http://100.64.0.1/',
      'http://[fd12::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[64:ff9b::a00:1]/',
    ]) {
      expect(allowed(p, url), url).toBe(false);
    }
    expect(allowed(p, 'http://8.8.8.8/')).toBe(true);
  });

  it('allows link-local with allowLinkLocal, but still not metadata addresses', () => {
    const p = policy({ allowLinkLocal: true });
    expect(allowed(p, 'http://169.254.1.1/')).toBe(true);
    expect(allowed(p, 'http://[fe80::1]/')).toBe(true);
    expect(allowed(p, 'http://169.254.169.254/')).toBe(false);
  });

  it('lets explicit rules override classes; the most specific rule wins, deny on a tie', () => {
    const p = policy({
      allow: ['169.254.169.254', '10.9.0.0/16', '*.internal.example', 'metadata.google.internal'],
      deny: ['10.0.0.0/8', '10.9.9.9', '8.8.0.0/16', 'evil.example', '169.254.169.254/32'],
    });
    // A tie between allow 169.254.169.254 (/32) and deny 169.254.169.254/32: deny.
    expect(allowed(p, 'http://169.254.169.254/')).toBe(false);
    expect(allowed(p, 'http://10.1.1.1/')).toBe(false);
    expect(allowed(p, 'http://10.9.1.1/')).toBe(true);
    expect(allowed(p, 'http://10.9.9.9/')).toBe(false);
    expect(allowed(p, 'http://8.8.8.8/')).toBe(false);
    // An IPv4 rule covers the IPv6 forms of the same address.
    expect(allowed(p, 'http://[::ffff:8.8.8.8]/')).toBe(false);
    expect(allowed(p, 'http://evil.example/')).toBe(false);
    expect(allowed(p, 'http://EVIL.example./')).toBe(false);
    expect(allowed(p, 'http://metadata.google.internal/')).toBe(true);
    expect(allowed(p, 'http://a.b.internal.example/')).toBe(true);
    expect(allowed(p, 'http://internal.example/')).toBe('resolve');
    expect(policy({ allow: ['169.254.169.254'] }).checkHost('169.254.169.254').allowed).toBe(true);
  });

  it('checks resolved addresses, where a rule on the name decides for all of them', () => {
    const p = policy({ allowPrivate: false, allow: ['svc.example'], deny: ['bad.example'] });
    expect(p.checkAddress('127.0.0.1', 'localhost')).toEqual({
      allowed: false,
      reason: expect.stringMatching(/^localhost \(127\.0\.0\.1\) is loopback/),
    });
    expect(p.checkAddress('10.0.0.5', 'svc.example').allowed).toBe(true);
    expect(p.nameAllowed('svc.example')).toBe(true);
    expect(p.checkAddress('8.8.8.8', 'bad.example').allowed).toBe(false);
    expect(p.checkAddress('8.8.8.8', 'ok.example').allowed).toBe(true);
  });

  it.each(['10.0.0.0/33', '1.2.3.4/', 'not a name', 'http://x', '::1/129', ''])(
    'refuses the rule %j',
    (rule) => {
      expect(outboundRuleProblem(rule)).toBeDefined();
      expect(() => new OutboundPolicy({ ...DEFAULT_OUTBOUND, allow: [rule] })).toThrow();
    },
  );
  it.each(['10.0.0.0/8', 'fd00::/8', '1.2.3.4', '::1', 'example.com', '*.example.com', 'svc_1'])(
    'accepts the rule %j',
    (rule) => {
      expect(outboundRuleProblem(rule)).toBeUndefined();
    },
  );
});

describe('validateOutbound', () => {
  it('names the field of every refused destination URI', () => {
    const trigger = {
      spec: {
        subscriber: { uri: 'http://169.254.169.254/latest' },
        delivery: { deadLetterSink: { uri: 'http://[fd00:ec2::254]/' } },
      },
    };
    const source = { spec: { sink: { uri: 'http://metadata.google.internal/' } } };
    const p = new OutboundPolicy();
    expect(validateOutbound(trigger, p).map((x) => x.field)).toEqual([
      'spec.subscriber.uri',
      'spec.delivery.deadLetterSink.uri',
    ]);
    expect(validateOutbound(source, p)).toEqual([
      { field: 'spec.sink.uri', message: expect.stringContaining('metadata') },
    ]);
    // Host names, allowed literals and invalid URIs (reported elsewhere) pass.
    const fine = {
      spec: {
        subscriber: { uri: 'http://example.com/' },
        sink: { uri: 'not a url' },
        delivery: { deadLetterSink: { uri: 'http://127.0.0.1:9/' } },
      },
    };
    expect(validateOutbound(fine, p)).toEqual([]);
  });
});

describe('delivery policy for a refused connection', () => {
  it('is not retried: the event goes to the dead-letter sink at once', () => {
    const refused = { kind: 'network', message: 'refused', permanent: true } as const;
    expect(isRetryable(refused)).toBe(false);
    expect(isRetryable({ kind: 'network', message: 'ECONNREFUSED' })).toBe(true);
    const delivery = resolveDelivery({ retry: 5 }, undefined, 1000);
    expect(nextStep(delivery, 1, refused, Date.now())).toEqual({ action: 'dead-letter' });
  });
});

describe('the HTTP sender', () => {
  let server: http.Server;
  let port = 0;
  let requests = 0;
  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      requests++;
      res.writeHead(200).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    setOutboundPolicy(new OutboundPolicy());
    await new Promise((resolve) => server.close(resolve));
  });
  const post = (url: string) =>
    send(new URL(url), {}, undefined, { timeoutMs: 5000, maxBodyBytes: 100 });

  it('never connects to a name that resolves to a refused address', async () => {
    setOutboundPolicy(new OutboundPolicy({ ...DEFAULT_OUTBOUND, allowPrivate: false }));
    const before = requests;
    const outcome = await post(`http://localhost:${port}/`);
    expect(outcome.result).toEqual({
      kind: 'network',
      permanent: true,
      message: expect.stringMatching(/localhost \(127\.0\.0\.1\) is loopback/),
    });
    const literal = await post(`http://127.0.0.1:${port}/`);
    expect(literal.result).toMatchObject({ kind: 'network', permanent: true });
    expect(requests).toBe(before);
  });

  it('connects when the policy allows the address or the name', async () => {
    setOutboundPolicy(new OutboundPolicy());
    expect((await post(`http://localhost:${port}/`)).result).toEqual({
      kind: 'response',
      status: 200,
    });
    setOutboundPolicy(
      new OutboundPolicy({ ...DEFAULT_OUTBOUND, allowPrivate: false, allow: ['localhost'] }),
    );
    expect((await post(`http://localhost:${port}/`)).result).toMatchObject({ status: 200 });
  });

  it("names the field of a source's refused upstream: URLs and host:port lists", () => {
    const p = new OutboundPolicy();
    const fields = (kind: string, spec: Record<string, unknown>): string[] =>
      validateOutbound({ kind, spec }, p).map((x) => `${x.field} ${x.message}`);
    expect(fields('MnsSource', { endpoint: 'http://169.254.169.254' })).toEqual([
      expect.stringMatching(/^spec\.endpoint "169\.254\.169\.254": .*metadata/),
    ]);
    expect(
      fields('ApiServerSource', { cluster: { server: 'https://[fd00:ec2::254]:6443' } }),
    ).toEqual([expect.stringMatching(/^spec\.cluster\.server /)]);
    expect(
      fields('KafkaSource', {
        bootstrapServers: ['kafka-1:9092,169.254.10.1:9092', 'metadata.google.internal:80'],
      }),
    ).toEqual([
      expect.stringMatching(/^spec\.bootstrapServers "169\.254\.10\.1": .*link-local/),
      expect.stringMatching(/^spec\.bootstrapServers "metadata\.google\.internal": /),
    ]);
    expect(fields('RocketMQSource', { endpoints: '10.0.0.1:8081;[fe80::1]:8081' })).toEqual([
      expect.stringMatching(/^spec\.endpoints "\[fe80::1\]": /),
    ]);
    // Names, private addresses (allowed by default) and the upstream fields of other kinds pass.
    expect(fields('KafkaSource', { bootstrapServers: ['kafka:9092', '10.1.2.3:9092'] })).toEqual(
      [],
    );
    expect(fields('GitHubSource', { endpoint: 'http://169.254.169.254' })).toEqual([]);
    // An explicit allow rule wins, as for destinations.
    const allowing = new OutboundPolicy({ ...DEFAULT_OUTBOUND, allow: ['169.254.10.1'] });
    expect(
      validateOutbound(
        { kind: 'KafkaSource', spec: { bootstrapServers: ['169.254.10.1:9092'] } },
        allowing,
      ),
    ).toEqual([]);
  });
});
