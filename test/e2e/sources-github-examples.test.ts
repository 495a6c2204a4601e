/**
 * Every example payload of `@octokit/webhooks-examples` (the api.github.com set: 329 deliveries of
 * 58 events), signed as GitHub signs them and posted through the real server to a GitHubSource
 * whose sink is a broker: each becomes exactly one CloudEvent at a trigger's subscriber, with
 * Knative's type, source, id and subject, and data identical to the body. Pings are answered 200
 * and not forwarded.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { beforeAll, describe, expect, it } from 'vitest';
import { getJson, idOf } from '../support/delivery.js';
import { useServer } from '../support/e2e.js';
import { putResource } from '../support/server-process.js';
import type { Receiver } from '../support/receiver.js';

interface Definition {
  readonly name: string;
  readonly examples: Record<string, unknown>[];
}

const definitions = createRequire(import.meta.url)(
  '@octokit/webhooks-examples',
) as readonly Definition[];

type Json = Record<string, any>;
const last = (url: string): string => url.slice(url.lastIndexOf('/') + 1);

/**
 * The subject each event must get: Knative's choice (eventing-github's events.go) for the events
 * it knows, ours (docs/sources.md) for the others.
 */
const SUBJECTS: Record<string, (p: Json) => string | number | undefined> = {
  branch_protection_rule: (p) => p.rule.id,
  check_run: (p) => p.check_run.id,
  check_suite: (p) => p.check_suite.id,
  code_scanning_alert: (p) => p.alert.number,
  commit_comment: (p) => last(p.comment.html_url),
  create: (p) => p.ref_type,
  delete: (p) => p.ref_type,
  dependabot_alert: (p) => p.alert.number,
  deploy_key: (p) => p.key.id,
  deployment: (p) => p.deployment.id,
  deployment_review: (p) => p.workflow_run?.id,
  deployment_status: (p) => p.deployment.id,
  discussion: (p) => p.discussion.number,
  discussion_comment: (p) => last(p.comment.html_url),
  fork: (p) => p.forkee.id,
  github_app_authorization: (p) => p.action,
  gollum: (p) => p.pages.map((page: Json) => page.page_name).join(','),
  installation: (p) => p.installation.id,
  installation_repositories: (p) => p.installation.id,
  issue_comment: (p) => last(p.comment.html_url),
  issues: (p) => p.issue.number,
  label: (p) => p.label.name,
  marketplace_purchase: (p) => p.marketplace_purchase.account.login,
  member: (p) => p.member.id,
  membership: (p) => p.member.id,
  merge_group: (p) => p.merge_group.head_sha,
  meta: (p) => p.hook_id,
  milestone: (p) => p.milestone.number,
  organization: (p) => p.action,
  org_block: (p) => p.action,
  package: (p) => p.package.id,
  page_build: (p) => p.id,
  project: (p) => p.action,
  project_card: (p) => p.action,
  project_column: (p) => p.action,
  projects_v2_item: (p) => p.projects_v2_item.id,
  public: (p) => p.repository.id,
  pull_request: (p) => p.pull_request.number,
  pull_request_review: (p) => p.review.id,
  pull_request_review_comment: (p) => p.comment.id,
  pull_request_review_thread: (p) => p.thread.node_id,
  push: (p) => last(p.compare),
  release: (p) => p.release.tag_name,
  repository: (p) => p.repository.id,
  repository_dispatch: (p) => p.action,
  repository_import: (p) => p.status,
  repository_vulnerability_alert: (p) => p.alert.id,
  security_advisory: (p) => p.security_advisory.ghsa_id,
  sponsorship: (p) => p.sponsorship.node_id,
  star: (p) => p.repository.id,
  status: (p) => p.sha,
  team: (p) => p.team.id,
  team_add: (p) => p.repository.id,
  watch: (p) => p.repository.id,
  workflow_dispatch: (p) => p.workflow,
  workflow_job: (p) => p.workflow_job.id,
  workflow_run: (p) => p.workflow_run.id,
};

interface Delivery {
  readonly event: string;
  readonly id: string;
  readonly payload: Json;
  readonly body: string;
}

const deliveries: Delivery[] = definitions.flatMap((d) =>
  d.examples.map((payload) => ({
    event: d.name,
    id: randomUUID(),
    payload,
    // Pretty-printed, as GitHub sends it: whitespace must reach the sink unchanged too.
    body: JSON.stringify(payload, null, 2),
  })),
);
const SECRET = 'It is a secret to everybody';

describe('GitHubSource with every @octokit/webhooks-examples payload', () => {
  const fixture = useServer();
  let subscriber: Receiver;
  let webhookUrl: string;

  beforeAll(async () => {
    const broker = await fixture.broker();
    subscriber = await fixture.subscribe(broker, 'github-all');
    // An organization source: each event's source is the repository its payload names.
    const { body } = await putResource(fixture.url, 'sources', 'default', 'octo', {
      apiVersion: 'sources.knative.dev/v1alpha1',
      kind: 'GitHubSource',
      spec: {
        ownerAndRepository: 'Codertocat',
        secretToken: { value: SECRET },
        sink: { ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: broker } },
      },
    });
    webhookUrl = (body.status as { webhookUrl: string }).webhookUrl;
  });

  it('the package holds the 329 api.github.com examples, and the table names every event', () => {
    expect(deliveries).toHaveLength(329);
    for (const d of definitions) {
      if (d.name !== 'ping') expect(Object.keys(SUBJECTS)).toContain(d.name);
    }
  });

  it('turns each delivery into exactly one CloudEvent, as Knative would', async () => {
    for (const d of deliveries) {
      const response = await fetch(webhookUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'GitHub-Hookshot/test',
          'x-github-event': d.event,
          'x-github-delivery': d.id,
          'x-github-hook-id': '1',
          'x-hub-signature': `sha1=${createHmac('sha1', SECRET).update(d.body).digest('hex')}`,
          'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(d.body).digest('hex')}`,
        },
        body: d.body,
      });
      expect(response.status, `${d.event} ${d.id}`).toBe(d.event === 'ping' ? 200 : 202);
    }
    const forwarded = deliveries.filter((d) => d.event !== 'ping');
    expect(forwarded).toHaveLength(325);
    await subscriber.waitFor(forwarded.length, 60_000);

    // A marker after everything: once it is in, nothing else is on its way.
    const marker = await fixture.send(
      (await getJson(`${fixture.url}/v1/namespaces/default/triggers/github-all`)).body.spec.broker,
    );
    await subscriber.waitFor(forwarded.length + 1);
    expect(subscriber.requests.map(idOf).at(-1)).toBe(marker);
    const byId = new Map(subscriber.requests.map((r) => [idOf(r), r]));
    expect(byId.size).toBe(subscriber.requests.length);

    for (const d of forwarded) {
      const request = byId.get(d.id);
      const what = `${d.event} ${d.id}`;
      expect(request, what).toBeDefined();
      // Binary mode percent-encodes attribute values in headers (the CloudEvents HTTP binding).
      const headers = Object.fromEntries(
        Object.entries(request!.headers).map(([k, v]) => [k, decodeURIComponent(String(v))]),
      );
      expect(headers['ce-type'], what).toBe(`dev.knative.source.github.${d.event}`);
      const fullName = d.payload.repository?.full_name as string | undefined;
      expect(headers['ce-source'], what).toBe(`https://github.com/${fullName ?? 'Codertocat'}`);
      const subject = SUBJECTS[d.event]!(d.payload);
      expect(headers['ce-subject'], what).toBe(
        subject === undefined || subject === '' ? undefined : String(subject),
      );
      expect(headers['content-type'], what).toBe('application/json');
      expect(request!.body.equals(Buffer.from(d.body)), what).toBe(true);
      // The extensions Knative sets on (nearly) every event.
      expect(headers['ce-sender'], what).toBe(d.payload.sender?.login);
      expect(headers['ce-action'], what).toBe(d.payload.action);
      expect(headers['ce-repository'], what).toBe(d.payload.repository?.name);
    }

    const { body } = await getJson(`${fixture.url}/v1/namespaces/default/sources/octo`);
    expect(body.status.events).toMatchObject({
      received: 329,
      pings: 4,
      forwarded: 325,
      duplicates: 0,
      rejected: 0,
    });
  });
});
