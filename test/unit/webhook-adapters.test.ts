import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { subjectAndExtensions } from '../../src/adapters/github/events.js';
import { githubAdapter } from '../../src/adapters/github/index.js';
import { gitlabAdapter, gitlabEventName, gitlabTrigger } from '../../src/adapters/gitlab/index.js';
import type { CloudEvent } from '../../src/core/event.js';
import { TributaryError, type ErrorCode } from '../../src/core/errors.js';
import type { Resource } from '../../src/core/resources/types.js';
import type {
  ResolvedSecrets,
  WebhookRequest,
  WebhookVerdict,
} from '../../src/sources/contracts.js';

const NOW = new Date('2025-03-01T12:00:00.000Z');
const SECRET = 'It is a secret to everybody';

type Headers = Record<string, string | string[] | undefined>;

/** The error `run` throws; fails the test when it throws none or something else. */
function errorOf(run: () => unknown): TributaryError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    return error as TributaryError;
  }
  throw new Error('expected a TributaryError, nothing was thrown');
}

function expectCode(run: () => unknown, code: ErrorCode): TributaryError {
  const error = errorOf(run);
  expect(error.code).toBe(code);
  return error;
}

/** The event of a verdict; fails the test when the verdict is an answer. */
function eventOf(verdict: WebhookVerdict): CloudEvent {
  if (verdict.kind !== 'event')
    throw new Error(`expected an event, got ${JSON.stringify(verdict)}`);
  return verdict.event;
}

function bytesOf(event: CloudEvent): Buffer {
  expect(event.data?.kind).toBe('bytes');
  const data = event.data as { kind: 'bytes'; bytes: Uint8Array };
  return Buffer.from(data.bytes);
}

// ---------------------------------------------------------------------------------------------
// GitHub

function githubSource(spec: Record<string, unknown> = {}): Resource {
  return {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitHubSource',
    metadata: { name: 'gh', namespace: 'default' },
    spec: {
      ownerAndRepository: 'Codertocat/Hello-World',
      sink: { ref: { kind: 'Broker', name: 'default' } },
      ...spec,
    },
  };
}

const sha256 = (body: Buffer, secret = SECRET): string =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
const sha1 = (body: Buffer, secret = SECRET): string =>
  `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`;

function githubRequest(
  event: string,
  payload: unknown,
  headers: Headers = {},
  body = Buffer.from(JSON.stringify(payload, null, 2), 'utf8'),
): WebhookRequest {
  return {
    headers: {
      'content-type': 'application/json',
      'x-github-event': event,
      'x-github-delivery': '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      'x-hub-signature-256': sha256(body),
      ...headers,
    },
    body,
  };
}

function handleGitHub(
  request: WebhookRequest,
  spec: Record<string, unknown> = {},
  secrets: ResolvedSecrets = { secretToken: SECRET },
): WebhookVerdict {
  return githubAdapter.compile(githubSource(spec), secrets).handle(request, NOW);
}

const CODERTOCAT = { login: 'Codertocat', id: 21031067, type: 'User' };
const HELLO_WORLD = {
  id: 186853002,
  name: 'Hello-World',
  full_name: 'Codertocat/Hello-World',
  owner: CODERTOCAT,
};

/** Knative's push example (eventing-github), trimmed. */
const PUSH = {
  ref: 'refs/tags/simple-tag',
  before: 'a10867b14bb761a232cd80139fbd4c0d33264240',
  after: '0000000000000000000000000000000000000000',
  created: false,
  deleted: true,
  forced: false,
  base_ref: null,
  compare: 'https://github.com/Codertocat/Hello-World/compare/a10867b14bb7...000000000000',
  commits: [],
  head_commit: null,
  repository: HELLO_WORLD,
  pusher: { name: 'Codertocat', email: '21031067+Codertocat@users.noreply.github.com' },
  sender: CODERTOCAT,
};

const ISSUE_COMMENT = {
  action: 'created',
  issue: { number: 2, title: 'Spelling error in the README file' },
  comment: {
    id: 393304133,
    html_url: 'https://github.com/Codertocat/Hello-World/issues/2#issuecomment-393304133',
    body: 'You are totally right! I will get this fixed right away.',
  },
  repository: HELLO_WORLD,
  sender: CODERTOCAT,
};

describe('githubAdapter: the event', () => {
  it('turns a push into a CloudEvent as Knative does', () => {
    const request = githubRequest('push', PUSH);
    const event = eventOf(handleGitHub(request));
    expect(event.attributes).toEqual({
      specversion: '1.0',
      id: '72d3162e-cc78-11e3-81ab-4c9367dc0958',
      source: 'https://github.com/Codertocat/Hello-World',
      type: 'dev.knative.source.github.push',
      subject: 'a10867b14bb7...000000000000',
      datacontenttype: 'application/json',
      time: '2025-03-01T12:00:00.000Z',
      owner: 'Codertocat',
      repository: 'Hello-World',
      sender: 'Codertocat',
      pusher: 'Codertocat',
      ref: 'refs/tags/simple-tag',
      created: false,
      deleted: true,
      forced: false,
    });
  });

  it('forwards the body byte for byte as data', () => {
    const body = Buffer.from(
      `{ "zen" :"x",\n\t"hook_id": 1, "unicode": "\u00e9\u2603" }  \n`,
      'utf8',
    );
    const event = eventOf(handleGitHub(githubRequest('watch', undefined, {}, body)));
    expect(bytesOf(event).equals(body)).toBe(true);
  });

  it('turns an issue_comment into the part of the comment URL after its last /', () => {
    const event = eventOf(handleGitHub(githubRequest('issue_comment', ISSUE_COMMENT)));
    expect(event.attributes).toMatchObject({
      type: 'dev.knative.source.github.issue_comment',
      subject: '2#issuecomment-393304133',
      action: 'created',
      owner: 'Codertocat',
      repository: 'Hello-World',
      sender: 'Codertocat',
    });
  });

  it('takes the id from X-GitHub-Delivery and the time from now', () => {
    const request = githubRequest('push', PUSH, { 'x-github-delivery': ' d-1 ' });
    const event = eventOf(
      githubAdapter.compile(githubSource(), { secretToken: SECRET }).handle(request, new Date(0)),
    );
    expect(event.attributes.id).toBe('d-1');
    expect(event.attributes.time).toBe('1970-01-01T00:00:00.000Z');
  });

  it('adds the ceOverrides extensions, after its own', () => {
    const event = eventOf(
      handleGitHub(githubRequest('push', PUSH), {
        ceOverrides: { extensions: { team: 'infra', owner: 'overridden' } },
      }),
    );
    expect(event.attributes.team).toBe('infra');
    expect(event.attributes.owner).toBe('overridden');
  });

  it('accepts a content type with parameters', () => {
    const request = githubRequest('push', PUSH, {
      'content-type': 'Application/JSON; charset=utf-8',
    });
    expect(handleGitHub(request).kind).toBe('event');
  });

  it('accepts a form-encoded delivery, with the payload field as data', () => {
    const json = JSON.stringify({ ...PUSH, compare: 'https://github.com/o/r/compare/a+b&c=d' });
    const body = Buffer.from(new URLSearchParams({ payload: json }).toString(), 'utf8');
    const request = githubRequest(
      'push',
      undefined,
      {
        'content-type': 'application/x-www-form-urlencoded',
      },
      body,
    );
    const event = eventOf(handleGitHub(request));
    expect(bytesOf(event).toString('utf8')).toBe(json);
    expect(event.attributes.subject).toBe('a+b&c=d');
    expect(event.attributes.datacontenttype).toBe('application/json');
  });

  it('refuses a form-encoded delivery without a payload field', () => {
    const body = Buffer.from('data=%7B%7D', 'utf8');
    const request = githubRequest(
      'push',
      undefined,
      {
        'content-type': 'application/x-www-form-urlencoded',
      },
      body,
    );
    expectCode(() => handleGitHub(request), 'BAD_REQUEST');
  });

  it.each([['text/plain'], [undefined]])('refuses the content type %j', (contentType) => {
    const request = githubRequest('push', PUSH, { 'content-type': contentType });
    expectCode(() => handleGitHub(request), 'UNSUPPORTED_MEDIA_TYPE');
  });

  it.each([
    ['truncated JSON', '{"ref": "refs/heads/main", "compare": "https://gi'],
    ['a JSON array', '[1, 2]'],
    ['a JSON string', '"push"'],
    ['an empty body', ''],
  ])('refuses %s with BAD_REQUEST', (_name, text) => {
    const request = githubRequest('push', undefined, {}, Buffer.from(text, 'utf8'));
    expectCode(() => handleGitHub(request), 'BAD_REQUEST');
  });

  it.each(['x-github-event', 'x-github-delivery'])('refuses a delivery without %s', (name) => {
    const request = githubRequest('push', PUSH, { [name]: undefined });
    const error = expectCode(() => handleGitHub(request), 'BAD_REQUEST');
    expect(error.problems).toEqual([{ field: name, message: 'required' }]);
  });

  it('refuses an empty X-GitHub-Delivery', () => {
    expectCode(
      () => handleGitHub(githubRequest('push', PUSH, { 'x-github-delivery': '  ' })),
      'BAD_REQUEST',
    );
  });

  it.each(['Push', 'pull-request', 'push event'])('refuses the event name %j', (event) => {
    const error = expectCode(() => handleGitHub(githubRequest(event, PUSH)), 'BAD_REQUEST');
    expect(error.problems[0]?.field).toBe('x-github-event');
  });

  it('makes an event with no subject for an event it has no rule for', () => {
    const event = eventOf(handleGitHub(githubRequest('brand_new_event', { action: 'done' })));
    expect(event.attributes.type).toBe('dev.knative.source.github.brand_new_event');
    expect(event.attributes).not.toHaveProperty('subject');
    expect(event.attributes.action).toBe('done');
  });
});

describe('githubAdapter: source', () => {
  it('is the repository for a repository source, whatever the payload names', () => {
    const payload = { ...PUSH, repository: { ...HELLO_WORLD, full_name: 'other/repo' } };
    const event = eventOf(handleGitHub(githubRequest('push', payload)));
    expect(event.attributes.source).toBe('https://github.com/Codertocat/Hello-World');
  });

  it("is the payload's repository for an organization source", () => {
    const payload = { ...PUSH, repository: { ...HELLO_WORLD, full_name: 'acme/widgets' } };
    const event = eventOf(
      handleGitHub(githubRequest('push', payload), { ownerAndRepository: 'acme' }),
    );
    expect(event.attributes.source).toBe('https://github.com/acme/widgets');
  });

  it('is the organization for an organization source when the payload has no repository', () => {
    const payload = {
      action: 'member_added',
      membership: { user: CODERTOCAT },
      organization: { login: 'acme' },
      sender: CODERTOCAT,
    };
    const event = eventOf(
      handleGitHub(githubRequest('organization', payload), { ownerAndRepository: 'acme' }),
    );
    expect(event.attributes.source).toBe('https://github.com/acme');
    expect(event.attributes.owner).toBe('acme');
    expect(event.attributes.subject).toBe('member_added');
  });

  it('is on the GitHub Enterprise server githubAPIURL names', () => {
    const event = eventOf(
      handleGitHub(githubRequest('push', PUSH), {
        githubAPIURL: 'https://ghe.example.com/api/v3',
      }),
    );
    expect(event.attributes.source).toBe('https://ghe.example.com/Codertocat/Hello-World');
  });

  it('is on github.com when githubAPIURL is api.github.com', () => {
    const event = eventOf(
      handleGitHub(githubRequest('push', PUSH), { githubAPIURL: 'https://api.github.com/' }),
    );
    expect(event.attributes.source).toBe('https://github.com/Codertocat/Hello-World');
  });
});

describe('githubAdapter: signatures', () => {
  const body = Buffer.from(JSON.stringify(PUSH), 'utf8');

  it('accepts a valid X-Hub-Signature-256', () => {
    const request = githubRequest('push', undefined, { 'x-hub-signature-256': sha256(body) }, body);
    expect(handleGitHub(request).kind).toBe('event');
  });

  it('accepts a valid legacy X-Hub-Signature when X-Hub-Signature-256 is absent', () => {
    const request = githubRequest(
      'push',
      undefined,
      { 'x-hub-signature-256': undefined, 'x-hub-signature': sha1(body) },
      body,
    );
    expect(handleGitHub(request).kind).toBe('event');
  });

  it('prefers X-Hub-Signature-256: a wrong one is refused even with a valid SHA-1 signature', () => {
    const request = githubRequest(
      'push',
      undefined,
      { 'x-hub-signature-256': sha256(body, 'wrong'), 'x-hub-signature': sha1(body) },
      body,
    );
    const error = expectCode(() => handleGitHub(request), 'UNAUTHORIZED');
    expect(error.status).toBe(401);
  });

  it('ignores a wrong SHA-1 signature when X-Hub-Signature-256 is valid', () => {
    const request = githubRequest(
      'push',
      undefined,
      { 'x-hub-signature-256': sha256(body), 'x-hub-signature': sha1(body, 'wrong') },
      body,
    );
    expect(handleGitHub(request).kind).toBe('event');
  });

  it.each<[string, Headers]>([
    ['no signature', { 'x-hub-signature-256': undefined }],
    ['a signature with another secret', { 'x-hub-signature-256': sha256(body, 'wrong') }],
    ['a signature of another body', { 'x-hub-signature-256': sha256(Buffer.from('{}')) }],
    [
      'a wrong SHA-1 signature alone',
      { 'x-hub-signature-256': undefined, 'x-hub-signature': sha1(body, 'wrong') },
    ],
    [
      'a SHA-256 digest in X-Hub-Signature',
      { 'x-hub-signature-256': undefined, 'x-hub-signature': sha256(body) },
    ],
  ])('refuses %s with 401 UNAUTHORIZED', (_name, headers) => {
    const request = githubRequest('push', undefined, headers, body);
    const error = expectCode(() => handleGitHub(request), 'UNAUTHORIZED');
    expect(error.status).toBe(401);
  });

  it('checks the signature before anything else, pings included', () => {
    const request = githubRequest(
      'ping',
      { zen: 'x', hook_id: 1 },
      {
        'x-hub-signature-256': undefined,
        'content-type': 'text/plain',
      },
    );
    expectCode(() => handleGitHub(request), 'UNAUTHORIZED');
  });

  it('needs no signature when the source has no secret', () => {
    const request = githubRequest('push', undefined, { 'x-hub-signature-256': undefined }, body);
    expect(handleGitHub(request, {}, {}).kind).toBe('event');
  });

  it('ignores a signature, even a wrong one, when the source has no secret', () => {
    const request = githubRequest(
      'push',
      undefined,
      { 'x-hub-signature-256': sha256(body, 'wrong') },
      body,
    );
    expect(handleGitHub(request, {}, {}).kind).toBe('event');
  });

  it('signs the raw form-encoded body, not the payload', () => {
    const form = Buffer.from(new URLSearchParams({ payload: JSON.stringify(PUSH) }).toString());
    const headers = { 'content-type': 'application/x-www-form-urlencoded' };
    expect(
      handleGitHub(
        githubRequest('push', undefined, { ...headers, 'x-hub-signature-256': sha256(form) }, form),
      ).kind,
    ).toBe('event');
    expectCode(
      () =>
        handleGitHub(
          githubRequest(
            'push',
            undefined,
            { ...headers, 'x-hub-signature-256': sha256(body) },
            form,
          ),
        ),
      'UNAUTHORIZED',
    );
  });
});

describe('githubAdapter: answers', () => {
  it('answers a ping 200 and forwards nothing', () => {
    const verdict = handleGitHub(githubRequest('ping', { zen: 'Design for failure.', hook_id: 1 }));
    expect(verdict).toEqual({ kind: 'answer', status: 200, counter: 'pings', message: 'pong' });
  });

  it('answers a ping 200 even when eventTypes does not list it', () => {
    const verdict = handleGitHub(githubRequest('ping', { hook_id: 1 }), { eventTypes: ['push'] });
    expect(verdict).toMatchObject({ kind: 'answer', status: 200, counter: 'pings' });
  });

  it('refuses a ping whose body is not JSON', () => {
    const request = githubRequest('ping', undefined, {}, Buffer.from('{', 'utf8'));
    expectCode(() => handleGitHub(request), 'BAD_REQUEST');
  });

  it('answers 202 ignored for an event eventTypes does not list', () => {
    const verdict = handleGitHub(githubRequest('issue_comment', ISSUE_COMMENT), {
      eventTypes: ['push', 'pull_request'],
    });
    expect(verdict).toEqual({
      kind: 'answer',
      status: 202,
      counter: 'ignored',
      message: 'issue_comment is not in spec.eventTypes; not forwarded',
    });
  });

  it('forwards an event eventTypes lists', () => {
    const verdict = handleGitHub(githubRequest('push', PUSH), {
      eventTypes: ['push', 'pull_request'],
    });
    expect(verdict.kind).toBe('event');
  });

  it('forwards every event when eventTypes is empty', () => {
    const verdict = handleGitHub(githubRequest('issue_comment', ISSUE_COMMENT), { eventTypes: [] });
    expect(verdict.kind).toBe('event');
  });
});

describe('subjectAndExtensions', () => {
  it("gives a push the last part of compare, and Knative's push extensions", () => {
    expect(subjectAndExtensions('push', PUSH)).toEqual({
      subject: 'a10867b14bb7...000000000000',
      extensions: {
        owner: 'Codertocat',
        repository: 'Hello-World',
        sender: 'Codertocat',
        action: undefined,
        installation: undefined,
        pusher: 'Codertocat',
        ref: 'refs/tags/simple-tag',
        created: false,
        deleted: true,
        forced: false,
      },
    });
  });

  it('keeps the push flags as booleans', () => {
    const { extensions } = subjectAndExtensions('push', {
      ...PUSH,
      created: true,
      deleted: false,
      forced: true,
    });
    expect(extensions).toMatchObject({ created: true, deleted: false, forced: true });
  });

  it('gives an issue_comment the end of the comment URL', () => {
    expect(subjectAndExtensions('issue_comment', ISSUE_COMMENT).subject).toBe(
      '2#issuecomment-393304133',
    );
  });

  it('gives a pull_request its number, as a string, and a number extension', () => {
    const { subject, extensions } = subjectAndExtensions('pull_request', {
      action: 'opened',
      number: 2,
      pull_request: { number: 2, title: 'Update the README with new information.' },
      repository: HELLO_WORLD,
      sender: CODERTOCAT,
    });
    expect(subject).toBe('2');
    expect(extensions).toMatchObject({ number: '2', action: 'opened' });
  });

  it('gives a create the ref type as subject and the ref as extension', () => {
    const { subject, extensions } = subjectAndExtensions('create', {
      ref: 'simple-tag',
      ref_type: 'tag',
      master_branch: 'master',
      repository: HELLO_WORLD,
      sender: CODERTOCAT,
    });
    expect(subject).toBe('tag');
    expect(extensions.ref).toBe('simple-tag');
  });

  it("gives a gollum the changed pages' names joined with commas", () => {
    const { subject } = subjectAndExtensions('gollum', {
      pages: [
        { page_name: 'Home', action: 'edited' },
        { page_name: 'Getting-Started', action: 'created' },
      ],
    });
    expect(subject).toBe('Home,Getting-Started');
  });

  it('gives the common extensions as strings: ids become decimal strings', () => {
    const { extensions } = subjectAndExtensions('check_run', {
      action: 'completed',
      check_run: { id: 128620228 },
      installation: { id: 2311213, node_id: 'MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMjMxMTIxMw==' },
      repository: HELLO_WORLD,
      sender: CODERTOCAT,
    });
    expect(extensions).toEqual({
      owner: 'Codertocat',
      repository: 'Hello-World',
      sender: 'Codertocat',
      action: 'completed',
      installation: '2311213',
    });
  });

  it('keeps ids beyond 32 bits exact', () => {
    const { subject, extensions } = subjectAndExtensions('workflow_job', {
      workflow_job: { id: 29679449 * 1000 + 123 },
      installation: { id: 2 ** 40 },
    });
    expect(subject).toBe('29679449123');
    expect(extensions.installation).toBe('1099511627776');
  });

  it('takes the owner from the organization when there is no repository', () => {
    const { extensions } = subjectAndExtensions('organization', {
      action: 'member_added',
      organization: { login: 'acme' },
    });
    expect(extensions.owner).toBe('acme');
    expect(extensions.repository).toBeUndefined();
  });

  it('leaves out values that are objects, arrays or null', () => {
    const { subject, extensions } = subjectAndExtensions('create', {
      ref: { name: 'x' },
      ref_type: null,
      sender: { login: ['a'] },
    });
    expect(subject).toBeUndefined();
    expect(extensions.ref).toBeUndefined();
    expect(extensions.sender).toBeUndefined();
  });

  it('has no subject for an unknown event, nor for names of Object.prototype', () => {
    for (const event of ['unknown_event', 'constructor', 'toString', '__proto__']) {
      const { subject, extensions } = subjectAndExtensions(event, {
        action: 'x',
        repository: HELLO_WORLD,
      });
      expect(subject).toBeUndefined();
      expect(extensions).toEqual({
        owner: 'Codertocat',
        repository: 'Hello-World',
        sender: undefined,
        action: 'x',
        installation: undefined,
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// GitLab

const PROJECT_URL = 'https://gitlab.example.com/gitlabhq/gitlab-test';

function gitlabSource(spec: Record<string, unknown> = {}): Resource {
  return {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitLabSource',
    metadata: { name: 'gl', namespace: 'default' },
    spec: { projectUrl: PROJECT_URL, sink: { uri: 'http://svc.example/' }, ...spec },
  };
}

const MERGE_REQUEST = {
  object_kind: 'merge_request',
  event_type: 'merge_request',
  user: { id: 1, name: 'Administrator', username: 'root' },
  project: { id: 1, name: 'Gitlab Test', web_url: 'http://example.com/gitlabhq/gitlab-test' },
  object_attributes: { id: 99, iid: 1, action: 'open' },
};

function gitlabRequest(
  event: string | undefined,
  headers: Headers = {},
  body?: Buffer,
): WebhookRequest {
  return {
    headers: {
      'content-type': 'application/json',
      'x-gitlab-event': event,
      'x-gitlab-token': SECRET,
      'x-gitlab-event-uuid': '13792a34-cac6-4fda-95a8-c58e00a3954e',
      ...headers,
    },
    body: body ?? Buffer.from(JSON.stringify(MERGE_REQUEST, null, 2), 'utf8'),
  };
}

function handleGitLab(
  request: WebhookRequest,
  spec: Record<string, unknown> = {},
  secrets: ResolvedSecrets = { secretToken: SECRET },
  now = NOW,
): WebhookVerdict {
  return gitlabAdapter.compile(gitlabSource(spec), secrets).handle(request, now);
}

describe('gitlabEventName and gitlabTrigger', () => {
  it.each([
    ['Push Hook', 'push', 'push_events'],
    ['Tag Push Hook', 'tag_push', 'tag_push_events'],
    ['Issue Hook', 'issue', 'issues_events'],
    ['Confidential Issue Hook', 'confidential_issue', 'confidential_issues_events'],
    ['Note Hook', 'note', 'note_events'],
    ['Confidential Note Hook', 'confidential_note', 'confidential_note_events'],
    ['Merge Request Hook', 'merge_request', 'merge_requests_events'],
    ['Wiki Page Hook', 'wiki_page', 'wiki_page_events'],
    ['Pipeline Hook', 'pipeline', 'pipeline_events'],
    ['Job Hook', 'job', 'job_events'],
    ['Deployment Hook', 'deployment', 'deployment_events'],
    ['Release Hook', 'release', 'releases_events'],
    ['Emoji Hook', 'emoji', 'emoji_events'],
    ['Resource Access Token Hook', 'resource_access_token', 'resource_access_token_events'],
  ])('%j is the event %s, sent for the trigger %s', (header, name, trigger) => {
    expect(gitlabEventName(header)).toBe(name);
    expect(gitlabTrigger(name)).toBe(trigger);
  });

  it('ignores case and surrounding whitespace', () => {
    expect(gitlabEventName('  merge request hook ')).toBe('merge_request');
    expect(gitlabEventName('PUSH HOOK')).toBe('push');
  });
});

describe('gitlabAdapter: the event', () => {
  it('turns a Merge Request Hook into a CloudEvent as Knative does', () => {
    const request = gitlabRequest('Merge Request Hook');
    const event = eventOf(handleGitLab(request));
    expect(event.attributes).toEqual({
      specversion: '1.0',
      id: '13792a34-cac6-4fda-95a8-c58e00a3954e',
      source: PROJECT_URL,
      type: 'dev.knative.sources.gitlab.merge_request',
      datacontenttype: 'application/json',
      time: '2025-03-01T12:00:00.000Z',
      comgitlabevent: 'Merge Request Hook',
    });
    expect(bytesOf(event).equals(request.body)).toBe(true);
  });

  it('prefers Idempotency-Key as the id', () => {
    const request = gitlabRequest('Issue Hook', { 'idempotency-key': 'idem-1' });
    expect(eventOf(handleGitLab(request)).attributes.id).toBe('idem-1');
  });

  it('skips an empty Idempotency-Key for X-Gitlab-Event-UUID', () => {
    const request = gitlabRequest('Issue Hook', {
      'idempotency-key': ' ',
      'x-gitlab-event-uuid': 'uuid-1',
    });
    expect(eventOf(handleGitLab(request)).attributes.id).toBe('uuid-1');
  });

  it('refuses an X-Gitlab-Event that names no event', () => {
    expectCode(() => handleGitLab(gitlabRequest('***')), 'BAD_REQUEST');
  });

  it('makes up an id when neither header is sent', () => {
    const request = gitlabRequest('Issue Hook', { 'x-gitlab-event-uuid': undefined });
    const id = eventOf(handleGitLab(request)).attributes.id;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('has no subject, and comgitlabevent is the header as sent', () => {
    const event = eventOf(handleGitLab(gitlabRequest('Release Hook')));
    expect(event.attributes).not.toHaveProperty('subject');
    expect(event.attributes.comgitlabevent).toBe('Release Hook');
    expect(event.attributes.type).toBe('dev.knative.sources.gitlab.release');
  });

  it('adds the ceOverrides extensions', () => {
    const event = eventOf(
      handleGitLab(gitlabRequest('Push Hook'), { ceOverrides: { extensions: { team: 'infra' } } }),
    );
    expect(event.attributes.team).toBe('infra');
  });

  it('refuses a delivery without X-Gitlab-Event', () => {
    const error = expectCode(() => handleGitLab(gitlabRequest(undefined)), 'BAD_REQUEST');
    expect(error.problems).toEqual([{ field: 'x-gitlab-event', message: 'required' }]);
  });

  it.each([['application/x-www-form-urlencoded'], ['text/plain'], [undefined]])(
    'refuses the content type %j',
    (contentType) => {
      const request = gitlabRequest('Push Hook', { 'content-type': contentType });
      expectCode(() => handleGitLab(request), 'UNSUPPORTED_MEDIA_TYPE');
    },
  );

  it('refuses a body that is not JSON', () => {
    const request = gitlabRequest('Push Hook', {}, Buffer.from('{"object_kind": "pu', 'utf8'));
    expectCode(() => handleGitLab(request), 'BAD_REQUEST');
  });
});

describe('gitlabAdapter: eventTypes', () => {
  it.each([
    ['Merge Request Hook', 'merge_requests_events'],
    ['Issue Hook', 'issues_events'],
    ['Release Hook', 'releases_events'],
    ['Push Hook', 'push_events'],
  ])('forwards a %s when eventTypes lists %s', (header, trigger) => {
    const verdict = handleGitLab(gitlabRequest(header), { eventTypes: [trigger] });
    expect(verdict.kind).toBe('event');
  });

  it('answers 202 ignored for an event whose trigger eventTypes does not list', () => {
    const verdict = handleGitLab(gitlabRequest('Merge Request Hook'), {
      eventTypes: ['push_events', 'issues_events'],
    });
    expect(verdict).toEqual({
      kind: 'answer',
      status: 202,
      counter: 'ignored',
      message: 'merge_requests_events is not in spec.eventTypes; not forwarded',
    });
  });

  it('does not take the event name for the trigger name', () => {
    const verdict = handleGitLab(gitlabRequest('Merge Request Hook'), {
      eventTypes: ['merge_request_events'],
    });
    expect(verdict.kind).toBe('answer');
  });
});

describe('gitlabAdapter: X-Gitlab-Token', () => {
  it.each<[string, Headers]>([
    ['missing', { 'x-gitlab-token': undefined }],
    ['wrong', { 'x-gitlab-token': 'It is a secret to everybody!' }],
    ['empty', { 'x-gitlab-token': '' }],
  ])('refuses a delivery whose token is %s with 401 UNAUTHORIZED', (_name, headers) => {
    const error = expectCode(
      () => handleGitLab(gitlabRequest('Push Hook', headers)),
      'UNAUTHORIZED',
    );
    expect(error.status).toBe(401);
  });

  it('needs no token when the source has none', () => {
    const request = gitlabRequest('Push Hook', { 'x-gitlab-token': undefined });
    expect(handleGitLab(request, {}, {}).kind).toBe('event');
  });

  it('checks the token before the headers and the body', () => {
    const request = gitlabRequest(undefined, {
      'x-gitlab-token': 'wrong',
      'content-type': 'text/plain',
    });
    expectCode(() => handleGitLab(request), 'UNAUTHORIZED');
  });
});

describe('gitlabAdapter: signing token (Standard Webhooks)', () => {
  const KEY = Buffer.from('a signing key of 24 bytes', 'utf8');
  const SIGNING = `whsec_${KEY.toString('base64')}`;
  const TIMESTAMP = String(NOW.getTime() / 1000);

  function signed(body: Buffer, timestamp = TIMESTAMP, key = KEY): Headers {
    const id = 'msg_2mE2cZ3s';
    const digest = createHmac('sha256', key)
      .update(`${id}.${timestamp}.${body.toString('utf8')}`)
      .digest('base64');
    return {
      'webhook-id': id,
      'webhook-timestamp': timestamp,
      'webhook-signature': `v1,${digest}`,
    };
  }

  const body = Buffer.from(JSON.stringify(MERGE_REQUEST), 'utf8');
  const secrets = { secretToken: SECRET, signingToken: SIGNING };

  it('accepts a delivery signed with the signing token', () => {
    const request = gitlabRequest('Merge Request Hook', signed(body), body);
    expect(handleGitLab(request, {}, secrets).kind).toBe('event');
  });

  it('accepts a signed delivery without X-Gitlab-Token when the source has only a signing token', () => {
    const request = gitlabRequest(
      'Merge Request Hook',
      { ...signed(body), 'x-gitlab-token': undefined },
      body,
    );
    expect(handleGitLab(request, {}, { signingToken: SIGNING }).kind).toBe('event');
  });

  it.each<[string, () => Headers]>([
    ['unsigned', () => ({})],
    ['signed with another key', () => signed(body, TIMESTAMP, Buffer.from('another key'))],
    ['signed for another body', () => signed(Buffer.from('{}'))],
    ['signed too long ago', () => signed(body, String(Number(TIMESTAMP) - 301))],
  ])('refuses a delivery %s with 401 UNAUTHORIZED', (_name, headers) => {
    const request = gitlabRequest('Merge Request Hook', headers(), body);
    const error = expectCode(() => handleGitLab(request, {}, secrets), 'UNAUTHORIZED');
    expect(error.message).toMatch(/^The webhook signature is not valid: /);
  });

  it('still checks X-Gitlab-Token when the signature is valid', () => {
    const request = gitlabRequest(
      'Merge Request Hook',
      { ...signed(body), 'x-gitlab-token': 'wrong' },
      body,
    );
    expectCode(() => handleGitLab(request, {}, secrets), 'UNAUTHORIZED');
  });

  it('checks the timestamp against the now it is given', () => {
    const request = gitlabRequest('Merge Request Hook', signed(body), body);
    const later = new Date(NOW.getTime() + 10 * 60_000);
    expectCode(() => handleGitLab(request, {}, secrets, later), 'UNAUTHORIZED');
  });
});
