/**
 * The GitHub delivery the sources scenario sends: a `push` payload as GitHub sends it (the first
 * `push` example of @octokit/webhooks-examples, the api.github.com examples that GitHub's own
 * Octokit tests with), and its signature as GitHub computes it.
 */
import { createHash, createHmac } from 'node:crypto';
import { createRequire } from 'node:module';

interface Definition {
  readonly name: string;
  readonly examples: readonly unknown[];
}

/** The GitHub event the scenario sends (X-GitHub-Event), and its CloudEvents type. */
export const GITHUB_EVENT = 'push';
export const GITHUB_EVENT_TYPE = `dev.knative.source.github.${GITHUB_EVENT}`;

/** The body of every delivery, webhook and ingress alike: the example's JSON as JSON.stringify writes it. */
export function pushPayload(): Buffer {
  const definitions = createRequire(import.meta.url)(
    '@octokit/webhooks-examples',
  ) as readonly Definition[];
  const example = definitions.find((d) => d.name === GITHUB_EVENT)?.examples[0];
  if (example === undefined) {
    throw new Error(`@octokit/webhooks-examples has no ${GITHUB_EVENT} example`);
  }
  return Buffer.from(JSON.stringify(example), 'utf8');
}

/** X-Hub-Signature-256: `sha256=` and the hex HMAC-SHA256 of the body with the webhook's secret. */
export function hubSignature256(body: Buffer, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** A short fingerprint of the body, for the report (the same bytes in every run). */
export function bodyDigest(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex').slice(0, 12);
}
