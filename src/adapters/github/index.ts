/**
 * GitHubSource (reference/knative.md 4.4, docs/sources.md): repository or organization webhooks.
 *
 * - Authenticity, when `spec.secretToken` is set: `X-Hub-Signature-256` (HMAC-SHA256 of the raw
 *   body), or the legacy SHA-1 `X-Hub-Signature` when only that is sent; 401 otherwise.
 * - `ping` (sent when the webhook is created) is answered 200 and not forwarded.
 * - The event: type `dev.knative.source.github.<X-GitHub-Event>`, source
 *   `https://github.com/<owner/repository>` (for an organization source, the repository the
 *   payload names, else the organization), id `X-GitHub-Delivery`, subject and extensions as in
 *   events.ts, data = the JSON body byte for byte (the `payload` field of a form-encoded delivery).
 * - `spec.eventTypes` lists the events wanted; others are answered 202 and not forwarded.
 */
import { TributaryError } from '../../core/errors.js';
import type { Resource } from '../../core/resources/types.js';
import {
  header,
  type ResolvedSecrets,
  type WebhookAdapter,
  type WebhookHandler,
  type WebhookRequest,
  type WebhookVerdict,
} from '../../sources/contracts.js';
import { verifyHexHmac } from '../signatures.js';
import {
  mediaType,
  overridesOf,
  parseJsonBody,
  requiredHeader,
  webhookEvent,
} from '../webhook-event.js';
import { subjectAndExtensions } from './events.js';

/** Knative's type prefix (singular `source`, unlike GitLab's). */
export const GITHUB_TYPE_PREFIX = 'dev.knative.source.github.';

function unauthorized(message: string): TributaryError {
  return new TributaryError('UNAUTHORIZED', message);
}

function checkSignature(request: WebhookRequest, secret: string): void {
  const sha256 = header(request, 'x-hub-signature-256');
  if (sha256 !== undefined) {
    if (!verifyHexHmac(sha256, 'sha256', secret, request.body)) {
      throw unauthorized('The X-Hub-Signature-256 does not match the body and the secret');
    }
    return;
  }
  const sha1 = header(request, 'x-hub-signature');
  if (sha1 === undefined) {
    throw unauthorized('The delivery is not signed: X-Hub-Signature-256 is missing');
  }
  if (!verifyHexHmac(sha1, 'sha1', secret, request.body)) {
    throw unauthorized('The X-Hub-Signature does not match the body and the secret');
  }
}

/** The JSON of the delivery: the body, or the `payload` field of a form-encoded one. */
function jsonOf(request: WebhookRequest): Buffer {
  const type = mediaType(request);
  if (type === 'application/json') return request.body;
  if (type === 'application/x-www-form-urlencoded') {
    const payload = new URLSearchParams(request.body.toString('utf8')).get('payload');
    if (payload === null) {
      throw new TributaryError('BAD_REQUEST', 'The form-encoded delivery has no payload field');
    }
    return Buffer.from(payload, 'utf8');
  }
  throw new TributaryError(
    'UNSUPPORTED_MEDIA_TYPE',
    `GitHub webhooks are application/json or application/x-www-form-urlencoded; the content type is ${type ?? 'missing'}`,
  );
}

/** `https://github.com`, or the web address of the GitHub Enterprise server `githubAPIURL` names. */
function webOrigin(apiUrl: string | undefined): string {
  if (apiUrl === undefined) return 'https://github.com';
  const url = new URL(apiUrl);
  return url.hostname === 'api.github.com' ? 'https://github.com' : url.origin;
}

function compile(source: Resource, secrets: ResolvedSecrets): WebhookHandler {
  const spec = source.spec as {
    ownerAndRepository: string;
    eventTypes?: string[];
    githubAPIURL?: string;
  };
  const wanted = spec.eventTypes?.length ? new Set(spec.eventTypes) : undefined;
  const overrides = overridesOf(source);
  const secret = secrets.secretToken;
  const origin = webOrigin(spec.githubAPIURL);
  const organization = !spec.ownerAndRepository.includes('/');
  const sourceOf = (payload: Record<string, unknown>): string => {
    if (organization) {
      const fullName = (payload.repository as { full_name?: unknown } | undefined)?.full_name;
      if (typeof fullName === 'string' && fullName !== '') return `${origin}/${fullName}`;
    }
    return `${origin}/${spec.ownerAndRepository}`;
  };
  return {
    handle(request, now): WebhookVerdict {
      if (secret !== undefined) checkSignature(request, secret);
      const event = requiredHeader(request, 'x-github-event');
      if (!/^[a-z0-9_]+$/.test(event)) {
        throw new TributaryError('BAD_REQUEST', `X-GitHub-Event "${event}" is not an event name`, {
          problems: [{ field: 'x-github-event', message: 'lower-case letters, digits and _' }],
        });
      }
      const id = requiredHeader(request, 'x-github-delivery');
      const data = jsonOf(request);
      const payload = parseJsonBody(data);
      if (event === 'ping') {
        return { kind: 'answer', status: 200, counter: 'pings', message: 'pong' };
      }
      if (wanted !== undefined && !wanted.has(event)) {
        return {
          kind: 'answer',
          status: 202,
          counter: 'ignored',
          message: `${event} is not in spec.eventTypes; not forwarded`,
        };
      }
      const { subject, extensions } = subjectAndExtensions(event, payload);
      return {
        kind: 'event',
        event: webhookEvent({
          id,
          source: sourceOf(payload),
          type: `${GITHUB_TYPE_PREFIX}${event}`,
          ...(subject === undefined ? {} : { subject }),
          extensions,
          overrides,
          data,
          time: now,
        }),
      };
    },
  };
}

export const githubAdapter: WebhookAdapter = { kind: 'GitHubSource', compile };
