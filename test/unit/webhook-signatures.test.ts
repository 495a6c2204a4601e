import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  sameSecret,
  STANDARD_WEBHOOKS_TOLERANCE_S,
  verifyHexHmac,
  verifyStandardWebhook,
} from '../../src/adapters/signatures.js';

const BODY = Buffer.from('{"zen":"Keep it logically awesome.","hook_id":1}\n', 'utf8');
const SECRET = 'It is a secret to everybody';

function hexHmac(algorithm: 'sha256' | 'sha1', secret: string, body: Buffer): string {
  return createHmac(algorithm, secret).update(body).digest('hex');
}

describe('sameSecret', () => {
  it('is true for identical strings', () => {
    expect(sameSecret('s3cr3t', 's3cr3t')).toBe(true);
    expect(sameSecret('', '')).toBe(true);
  });

  it.each([
    ['a different string of the same length', 's3cr3T'],
    ['a prefix of the secret', 's3cr3'],
    ['the secret with more after it', 's3cr3t!'],
    ['an empty string', ''],
    ['the secret with surrounding whitespace', ' s3cr3t '],
  ])('is false for %s', (_name, given) => {
    expect(sameSecret(given, 's3cr3t')).toBe(false);
  });
});

describe('verifyHexHmac', () => {
  it('accepts the sha256=<hex> HMAC-SHA256 of the body', () => {
    const signature = `sha256=${hexHmac('sha256', SECRET, BODY)}`;
    expect(verifyHexHmac(signature, 'sha256', SECRET, BODY)).toBe(true);
  });

  it('accepts the sha1=<hex> HMAC-SHA1 of the body', () => {
    const signature = `sha1=${hexHmac('sha1', SECRET, BODY)}`;
    expect(verifyHexHmac(signature, 'sha1', SECRET, BODY)).toBe(true);
  });

  it('accepts upper-case hex digits', () => {
    const signature = `sha256=${hexHmac('sha256', SECRET, BODY).toUpperCase()}`;
    expect(verifyHexHmac(signature, 'sha256', SECRET, BODY)).toBe(true);
  });

  it('refuses the signature of another body', () => {
    const other = Buffer.from('{"zen":"Keep it logically awesome.","hook_id":2}\n', 'utf8');
    const signature = `sha256=${hexHmac('sha256', SECRET, other)}`;
    expect(verifyHexHmac(signature, 'sha256', SECRET, BODY)).toBe(false);
  });

  it('refuses a signature made with another secret', () => {
    const signature = `sha256=${hexHmac('sha256', 'another secret', BODY)}`;
    expect(verifyHexHmac(signature, 'sha256', SECRET, BODY)).toBe(false);
  });

  it('refuses a SHA-1 digest where SHA-256 is asked for, and the reverse', () => {
    expect(verifyHexHmac(`sha256=${hexHmac('sha1', SECRET, BODY)}`, 'sha256', SECRET, BODY)).toBe(
      false,
    );
    expect(verifyHexHmac(`sha1=${hexHmac('sha256', SECRET, BODY)}`, 'sha1', SECRET, BODY)).toBe(
      false,
    );
  });

  it.each([
    ['no prefix', (hex: string) => hex],
    ['the other algorithm as prefix', (hex: string) => `sha1=${hex}`],
    ['an upper-case prefix', (hex: string) => `SHA256=${hex}`],
    ['a colon instead of =', (hex: string) => `sha256:${hex}`],
  ])('refuses a correct digest with %s', (_name, format) => {
    const signature = format(hexHmac('sha256', SECRET, BODY));
    expect(verifyHexHmac(signature, 'sha256', SECRET, BODY)).toBe(false);
  });

  it.each([
    ['an empty digest', () => 'sha256='],
    ['a non-hex character', (hex: string) => `sha256=${hex.slice(0, -1)}g`],
    ['an odd number of hex digits', (hex: string) => `sha256=${hex.slice(0, -1)}`],
    ['the digest cut short by one byte', (hex: string) => `sha256=${hex.slice(0, -2)}`],
    ['one extra byte', (hex: string) => `sha256=${hex}00`],
    [
      'the digest in base64',
      () => `sha256=${createHmac('sha256', SECRET).update(BODY).digest('base64')}`,
    ],
  ])('refuses %s', (_name, format) => {
    const signature = format(hexHmac('sha256', SECRET, BODY));
    expect(verifyHexHmac(signature, 'sha256', SECRET, BODY)).toBe(false);
  });
});

describe('verifyStandardWebhook', () => {
  // The Standard Webhooks example secret: `whsec_` then the base64 of the key.
  const KEY = Buffer.from('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'utf8');
  const WHSEC = `whsec_${KEY.toString('base64')}`;
  const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
  const NOW = new Date('2025-03-01T12:00:00.000Z');
  const TIMESTAMP = String(NOW.getTime() / 1000);

  /** `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, computed independently of the code. */
  function v1(key: Buffer | string, id = ID, timestamp = TIMESTAMP, body = BODY): string {
    const digest = createHmac('sha256', key)
      .update(`${id}.${timestamp}.${body.toString('utf8')}`)
      .digest('base64');
    return `v1,${digest}`;
  }

  it('accepts a v1 signature keyed with the base64-decoded part of a whsec_ secret', () => {
    const headers = { id: ID, timestamp: TIMESTAMP, signature: v1(KEY) };
    expect(verifyStandardWebhook(headers, WHSEC, BODY, NOW)).toEqual({ ok: true });
  });

  it('keys a secret without the whsec_ prefix with its base64-decoded bytes, as the reference libraries', () => {
    const bare = KEY.toString('base64');
    expect(
      verifyStandardWebhook({ id: ID, timestamp: TIMESTAMP, signature: v1(KEY) }, bare, BODY, NOW),
    ).toEqual({ ok: true });
    const utf8 = { id: ID, timestamp: TIMESTAMP, signature: v1(Buffer.from(bare, 'utf8')) };
    expect(verifyStandardWebhook(utf8, bare, BODY, NOW).ok).toBe(false);
  });

  it('does not key a whsec_ secret with its text', () => {
    const headers = { id: ID, timestamp: TIMESTAMP, signature: v1(Buffer.from(WHSEC, 'utf8')) };
    expect(verifyStandardWebhook(headers, WHSEC, BODY, NOW).ok).toBe(false);
  });

  it('accepts a list of space-separated signatures when one of them matches', () => {
    const wrong = v1(Buffer.from('an old key', 'utf8'));
    const signature = `${wrong} ${v1(KEY)} v1,${Buffer.alloc(32).toString('base64')}`;
    expect(
      verifyStandardWebhook({ id: ID, timestamp: TIMESTAMP, signature }, WHSEC, BODY, NOW),
    ).toEqual({ ok: true });
  });

  it('ignores entries of other versions, even when their digest would match', () => {
    const digest = v1(KEY).slice('v1,'.length);
    const signature = `v1a,${digest} v2,${digest} ${digest}`;
    expect(
      verifyStandardWebhook({ id: ID, timestamp: TIMESTAMP, signature }, WHSEC, BODY, NOW),
    ).toEqual({ ok: false, reason: 'no v1 signature in webhook-signature matches' });
  });

  it.each([
    ['another body', () => v1(KEY, ID, TIMESTAMP, Buffer.from('{}', 'utf8'))],
    ['another id', () => v1(KEY, 'msg_other')],
    ['another timestamp', () => v1(KEY, ID, String(Number(TIMESTAMP) - 1))],
    ['another key', () => v1(Buffer.from('not the key', 'utf8'))],
    ['an empty digest', () => 'v1,'],
  ])('refuses a signature of %s', (_name, signature) => {
    expect(
      verifyStandardWebhook(
        { id: ID, timestamp: TIMESTAMP, signature: signature() },
        WHSEC,
        BODY,
        NOW,
      ),
    ).toEqual({ ok: false, reason: 'no v1 signature in webhook-signature matches' });
  });

  it.each(['id', 'timestamp', 'signature'] as const)(
    'refuses a delivery without its %s',
    (name) => {
      const headers: { id?: string; timestamp?: string; signature?: string } = {
        id: ID,
        timestamp: TIMESTAMP,
        signature: v1(KEY),
      };
      delete headers[name];
      expect(verifyStandardWebhook(headers, WHSEC, BODY, NOW)).toEqual({
        ok: false,
        reason: 'webhook-id, webhook-timestamp and webhook-signature are required',
      });
    },
  );

  it.each(['', 'soon', '1740830400.5', '-1740830400', '2025-03-01T12:00:00Z', ' 1740830400'])(
    'refuses the non-numeric timestamp %j',
    (timestamp) => {
      const headers = { id: ID, timestamp, signature: v1(KEY, ID, timestamp) };
      expect(verifyStandardWebhook(headers, WHSEC, BODY, NOW)).toEqual({
        ok: false,
        reason: 'webhook-timestamp is not a number',
      });
    },
  );

  it('the tolerance is five minutes', () => {
    expect(STANDARD_WEBHOOKS_TOLERANCE_S).toBe(300);
  });

  it.each([
    ['exactly five minutes old', -300],
    ['exactly five minutes ahead', 300],
    ['a minute old', -60],
  ])('accepts a timestamp %s', (_name, offset) => {
    const timestamp = String(Number(TIMESTAMP) + offset);
    const headers = { id: ID, timestamp, signature: v1(KEY, ID, timestamp) };
    expect(verifyStandardWebhook(headers, WHSEC, BODY, NOW)).toEqual({ ok: true });
  });

  it.each([
    ['more than five minutes old', -301, '301'],
    ['more than five minutes ahead', 301, '301'],
    ['an hour old', -3600, '3600'],
  ])('refuses a correctly signed timestamp %s', (_name, offset, seconds) => {
    const timestamp = String(Number(TIMESTAMP) + offset);
    const headers = { id: ID, timestamp, signature: v1(KEY, ID, timestamp) };
    expect(verifyStandardWebhook(headers, WHSEC, BODY, NOW)).toEqual({
      ok: false,
      reason: `webhook-timestamp is ${seconds} s away from now`,
    });
  });
});
