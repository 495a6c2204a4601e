/**
 * The webhook-source conformance suite against each adapter, through the real server (on the
 * backend TRIBUTARY_TEST_BACKEND names).
 */
import { createHmac } from 'node:crypto';
import { useServer } from '../support/e2e.js';
import {
  WEBHOOK_MAX_BODY_ARGS,
  webhookSourceTests,
  type WebhookSourceCase,
} from './webhook-source.suite.js';

const fixture = useServer([...WEBHOOK_MAX_BODY_ARGS]);

const issueBody = JSON.stringify(
  {
    action: 'opened',
    issue: { number: 7, title: 'It broke' },
    repository: { name: 'widgets', full_name: 'acme/widgets', owner: { login: 'acme' } },
    sender: { login: 'octocat' },
  },
  null,
  2,
);

const github: WebhookSourceCase = {
  kind: 'GitHubSource',
  spec: (secret) => ({ ownerAndRepository: 'acme/widgets', secretToken: { value: secret } }),
  headers: (body, id, secret) => ({
    'content-type': 'application/json',
    'x-github-event': 'issues',
    'x-github-delivery': id,
    'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
  }),
  authHeaders: ['x-hub-signature-256'],
  eventHeader: 'x-github-event',
  sample: {
    body: issueBody,
    type: 'dev.knative.source.github.issues',
    source: 'https://github.com/acme/widgets',
  },
  otherEventTypes: ['push', 'pull_request'],
};

const gitlab: WebhookSourceCase = {
  kind: 'GitLabSource',
  spec: (secret) => ({
    projectUrl: 'https://gitlab.example.com/acme/widgets',
    secretToken: { value: secret },
  }),
  headers: (_body, id, secret) => ({
    'content-type': 'application/json',
    'x-gitlab-event': 'Issue Hook',
    'x-gitlab-token': secret,
    'x-gitlab-event-uuid': id,
  }),
  authHeaders: ['x-gitlab-token'],
  eventHeader: 'x-gitlab-event',
  sample: {
    body: JSON.stringify({ object_kind: 'issue', object_attributes: { iid: 7 } }),
    type: 'dev.knative.sources.gitlab.issue',
    source: 'https://gitlab.example.com/acme/widgets',
  },
  otherEventTypes: ['push_events', 'merge_requests_events'],
};

webhookSourceTests(fixture, github);
webhookSourceTests(fixture, gitlab);
