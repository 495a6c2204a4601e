/**
 * Checks of webhook authenticity shared by the adapters: HMAC signatures over the raw body
 * (GitHub's `X-Hub-Signature-256`), Standard Webhooks signatures (GitLab's signing token), and
 * shared tokens (`X-Gitlab-Token`). Every comparison takes the same time whatever the input.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** True when `given` equals `expected`, compared in constant time (also across lengths). */
export function sameSecret(given: string, expected: string): boolean {
  // Hashing first makes both sides the same length, so the length of the secret does not leak.
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given.length === expected.length;
}

/** Equal digests, in constant time; false for different lengths. */
function sameDigest(given: Buffer, expected: Buffer): boolean {
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * An `<algorithm>=<hex digest>` signature (GitHub: `sha256=...`, `sha1=...`) of `body` with
 * `secret`: true when it matches.
 */
export function verifyHexHmac(
  signature: string,
  algorithm: 'sha256' | 'sha1',
  secret: string,
  body: Buffer,
): boolean {
  const prefix = `${algorithm}=`;
  if (!signature.startsWith(prefix)) return false;
  const hex = signature.slice(prefix.length).trim();
  if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length % 2 !== 0) return false;
  const expected = createHmac(algorithm, secret).update(body).digest();
  return sameDigest(Buffer.from(hex, 'hex'), expected);
}

/** How far a Standard Webhooks timestamp may be from now (the specification's suggestion). */
export const STANDARD_WEBHOOKS_TOLERANCE_S = 5 * 60;

export type StandardWebhookCheck =
  { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * A Standard Webhooks signature (standardwebhooks.com): `webhook-signature` lists space-separated
 * `v1,<base64 HMAC-SHA256>` of `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the
 * base64-decoded secret, without its `whsec_` prefix when it has one.
 */
export function verifyStandardWebhook(
  headers: { id?: string; timestamp?: string; signature?: string },
  secret: string,
  body: Buffer,
  now: Date,
): StandardWebhookCheck {
  const { id, timestamp, signature } = headers;
  if (id === undefined || timestamp === undefined || signature === undefined) {
    return {
      ok: false,
      reason: 'webhook-id, webhook-timestamp and webhook-signature are required',
    };
  }
  if (!/^\d+$/.test(timestamp)) return { ok: false, reason: 'webhook-timestamp is not a number' };
  const skew = Math.abs(now.getTime() / 1000 - Number(timestamp));
  if (skew > STANDARD_WEBHOOKS_TOLERANCE_S) {
    return { ok: false, reason: `webhook-timestamp is ${Math.round(skew)} s away from now` };
  }
  // As the specification's reference libraries: the key is the base64 after an optional prefix.
  const key = Buffer.from(
    secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret,
    'base64',
  );
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest();
  for (const entry of signature.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    if (sameDigest(Buffer.from(entry.slice(comma + 1), 'base64'), expected)) return { ok: true };
  }
  return { ok: false, reason: 'no v1 signature in webhook-signature matches' };
}
