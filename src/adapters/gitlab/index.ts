/**
 * GitLabSource (reference/knative.md 4.5, docs/sources.md): GitLab project or group webhooks.
 *
 * - Authenticity: `X-Gitlab-Token` equal to `spec.secretToken` (constant time), and, when
 *   `spec.signingToken` is set, the Standard Webhooks signature GitLab adds with a signing token.
 * - The event: type `dev.knative.sources.gitlab.<snake_case of X-Gitlab-Event minus " Hook">`,
 *   source `spec.projectUrl`, id `Idempotency-Key`, else `X-Gitlab-Event-UUID`, else a new UUID;
 *   no subject; extension `comgitlabevent` = the X-Gitlab-Event header as sent; data = the body.
 * - `spec.eventTypes` lists GitLab's trigger names (`push_events`, `merge_requests_events`, ...);
 *   deliveries of other events are answered 202 and not forwarded.
 */
import { randomUUID } from 'node:crypto';
import { TributaryError } from '../../core/errors.js';
import type { Resource } from '../../core/resources/types.js';
import {
  header,
  type ResolvedSecrets,
  type WebhookAdapter,
  type WebhookHandler,
  type WebhookVerdict,
} from '../../sources/contracts.js';
import { sameSecret, verifyStandardWebhook } from '../signatures.js';
import {
  mediaType,
  overridesOf,
  parseJsonBody,
  requiredHeader,
  webhookEvent,
} from '../webhook-event.js';

export const GITLAB_TYPE_PREFIX = 'dev.knative.sources.gitlab.';

/** `Merge Request Hook` -> `merge_request`. */
export function gitlabEventName(header: string): string {
  return header
    .trim()
    .replace(/ Hook$/i, '')
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '');
}

/** Trigger names whose plural GitLab spells differently from the event name. */
const TRIGGER_NAMES: Readonly<Record<string, string>> = {
  issue: 'issues_events',
  confidential_issue: 'confidential_issues_events',
  merge_request: 'merge_requests_events',
  release: 'releases_events',
};

/** The webhook trigger (`spec.eventTypes` entry) that makes GitLab send an event. */
export function gitlabTrigger(eventName: string): string {
  return TRIGGER_NAMES[eventName] ?? `${eventName}_events`;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === '' ? undefined : trimmed;
}

function unauthorized(message: string): TributaryError {
  return new TributaryError('UNAUTHORIZED', message);
}

function compile(source: Resource, secrets: ResolvedSecrets): WebhookHandler {
  const spec = source.spec as { projectUrl: string; eventTypes?: string[] };
  const wanted = spec.eventTypes?.length ? new Set(spec.eventTypes) : undefined;
  const overrides = overridesOf(source);
  const token = secrets.secretToken;
  const signingToken = secrets.signingToken;
  return {
    handle(request, now): WebhookVerdict {
      if (token !== undefined) {
        const given = header(request, 'x-gitlab-token');
        if (given === undefined) throw unauthorized('The X-Gitlab-Token header is missing');
        if (!sameSecret(given, token)) throw unauthorized('The X-Gitlab-Token is wrong');
      }
      if (signingToken !== undefined) {
        const check = verifyStandardWebhook(
          {
            id: header(request, 'webhook-id'),
            timestamp: header(request, 'webhook-timestamp'),
            signature: header(request, 'webhook-signature'),
          },
          signingToken,
          request.body,
          now,
        );
        if (!check.ok) throw unauthorized(`The webhook signature is not valid: ${check.reason}`);
      }
      const eventHeader = requiredHeader(request, 'x-gitlab-event');
      const type = mediaType(request);
      if (type !== 'application/json') {
        throw new TributaryError(
          'UNSUPPORTED_MEDIA_TYPE',
          `GitLab webhooks are JSON; the content type is ${type ?? 'missing'}`,
        );
      }
      parseJsonBody(request.body);
      const name = gitlabEventName(eventHeader);
      if (name === '') {
        throw new TributaryError('BAD_REQUEST', `X-Gitlab-Event "${eventHeader}" names no event`);
      }
      if (wanted !== undefined && !wanted.has(gitlabTrigger(name))) {
        return {
          kind: 'answer',
          status: 202,
          counter: 'ignored',
          message: `${gitlabTrigger(name)} is not in spec.eventTypes; not forwarded`,
        };
      }
      const id =
        nonEmpty(header(request, 'idempotency-key')) ??
        nonEmpty(header(request, 'x-gitlab-event-uuid')) ??
        randomUUID();
      return {
        kind: 'event',
        event: webhookEvent({
          id,
          source: spec.projectUrl,
          type: `${GITLAB_TYPE_PREFIX}${name}`,
          extensions: { comgitlabevent: eventHeader },
          overrides,
          data: request.body,
          time: now,
        }),
      };
    },
  };
}

export const gitlabAdapter: WebhookAdapter = { kind: 'GitLabSource', compile };
