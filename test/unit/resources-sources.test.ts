import { describe, expect, it } from 'vitest';
import type { FieldProblem } from '../../src/core/errors.js';
import { REDACTED, redactSecrets, restoreSecrets } from '../../src/core/resources/secrets.js';
import type { Resource } from '../../src/core/resources/types.js';
import { validateSource } from '../../src/core/resources/validate.js';

const fields = (problems: readonly FieldProblem[]): string[] => problems.map((p) => p.field);

/** Knative's GitHubSource example (knative.dev docs), with the token from a Kubernetes secret. */
function githubSource(spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitHubSource',
    metadata: { name: 'githubsourcesample', namespace: 'default' },
    spec: {
      eventTypes: ['pull_request'],
      ownerAndRepository: 'knative/docs',
      accessToken: { secretKeyRef: { name: 'githubsecret', key: 'accessToken' } },
      secretToken: { secretKeyRef: { name: 'githubsecret', key: 'secretToken' } },
      sink: {
        ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'default' },
      },
      ...spec,
    },
  };
}

/** Knative's GitLabSource example. */
function gitlabSource(spec: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitLabSource',
    metadata: { name: 'gitlabsource-sample', namespace: 'default' },
    spec: {
      eventTypes: ['push_events', 'issues_events'],
      projectUrl: 'https://gitlab.com/knative-examples/functions',
      accessToken: { secretKeyRef: { name: 'gitlabsecret', key: 'accessToken' } },
      secretToken: { secretKeyRef: { name: 'gitlabsecret', key: 'secretToken' } },
      sink: { ref: { apiVersion: 'eventing.knative.dev/v1', kind: 'Broker', name: 'default' } },
      ...spec,
    },
  };
}

/** A spec without `field`. */
function without(
  make: (spec?: Record<string, unknown>) => Record<string, unknown>,
  field: string,
): Record<string, unknown> {
  const resource = make();
  const spec = { ...(resource.spec as Record<string, unknown>) };
  delete spec[field];
  return { ...resource, spec };
}

describe('validateSource: GitHubSource', () => {
  it("accepts Knative's example with secretKeyRef tokens and a Broker sink", () => {
    expect(validateSource(githubSource())).toEqual([]);
  });

  it.each<[string, Record<string, unknown>]>([
    ['an organization instead of a repository', { ownerAndRepository: 'acme' }],
    ['names with dots, dashes and underscores', { ownerAndRepository: 'my-org/repo.name_2' }],
    ['no eventTypes (every event)', { eventTypes: undefined }],
    ['an empty eventTypes list', { eventTypes: [] }],
    ['event names with digits', { eventTypes: ['projects_v2', 'projects_v2_item'] }],
    ['a token given inline', { secretToken: { value: 'It is a secret to everybody' } }],
    ['a token from an environment variable', { secretToken: { env: 'GITHUB_WEBHOOK_SECRET' } }],
    [
      'an optional secretKeyRef',
      { secretToken: { secretKeyRef: { name: 's', key: 'k', optional: true } } },
    ],
    ['a GitHub Enterprise API URL', { githubAPIURL: 'https://ghe.example.com/api/v3' }],
    ['secure: false', { secure: false }],
    ['a uri sink', { sink: { uri: 'http://svc.example/events' } }],
    ['a serviceAccountName', { serviceAccountName: 'github-sa' }],
    ['ceOverrides extensions', { ceOverrides: { extensions: { team: 'infra', empty: '' } } }],
  ])('accepts %s', (_name, spec) => {
    expect(validateSource(githubSource(spec))).toEqual([]);
  });

  it('requires ownerAndRepository', () => {
    expect(validateSource(without(githubSource, 'ownerAndRepository'))).toEqual([
      { field: 'spec.ownerAndRepository', message: 'required' },
    ]);
  });

  it.each(['a/b/c', 'a/', '/b', 'acme/-', 'ac me/repo', 'acme/repo!'])(
    'refuses the ownerAndRepository %j',
    (ownerAndRepository) => {
      const problems = validateSource(githubSource({ ownerAndRepository }));
      expect(problems).toEqual([
        {
          field: 'spec.ownerAndRepository',
          message: `"${ownerAndRepository}" is not "owner/repository" or an organization name`,
        },
      ]);
    },
  );

  it.each<[unknown, string]>([
    ['', 'must not be empty'],
    [42, 'must be a string'],
  ])('refuses the ownerAndRepository %j once', (ownerAndRepository, message) => {
    const problems = validateSource(githubSource({ ownerAndRepository }));
    expect(fields(problems)).toEqual(['spec.ownerAndRepository']);
    expect(problems[0]?.message).toContain(message);
  });

  it('refuses eventTypes that is not a list', () => {
    expect(validateSource(githubSource({ eventTypes: 'push' }))).toEqual([
      { field: 'spec.eventTypes', message: 'must be a list of strings, got a string' },
    ]);
  });

  it('names the bad item of eventTypes by its index', () => {
    expect(validateSource(githubSource({ eventTypes: ['push', 'Push', 'issues'] }))).toEqual([
      {
        field: 'spec.eventTypes[1]',
        message: '"Push" is not a GitHub webhook event name (such as push or pull_request)',
      },
    ]);
  });

  it('refuses empty and non-string eventTypes items', () => {
    expect(fields(validateSource(githubSource({ eventTypes: ['', 7, null] })))).toEqual([
      'spec.eventTypes[0]',
      'spec.eventTypes[1]',
      'spec.eventTypes[2]',
    ]);
  });

  it('refuses a secretToken with both value and env', () => {
    expect(validateSource(githubSource({ secretToken: { value: 'x', env: 'SECRET' } }))).toEqual([
      { field: 'spec.secretToken', message: 'give exactly one of value, env and secretKeyRef' },
    ]);
  });

  it('refuses an empty secretToken', () => {
    expect(validateSource(githubSource({ secretToken: {} }))).toEqual([
      { field: 'spec.secretToken', message: 'give exactly one of value, env and secretKeyRef' },
    ]);
  });

  it('refuses a secretToken that is not an object', () => {
    expect(fields(validateSource(githubSource({ secretToken: 'plain' })))).toEqual([
      'spec.secretToken',
    ]);
  });

  it.each(['1SECRET', 'GITHUB-SECRET', 'A B', '$HOME'])(
    'refuses the environment variable name %j',
    (env) => {
      expect(validateSource(githubSource({ secretToken: { env } }))).toEqual([
        { field: 'spec.secretToken.env', message: `"${env}" is not an environment variable name` },
      ]);
    },
  );

  it('refuses an empty value and an empty env', () => {
    expect(fields(validateSource(githubSource({ secretToken: { value: '' } })))).toEqual([
      'spec.secretToken.value',
    ]);
    expect(fields(validateSource(githubSource({ secretToken: { env: '' } })))).toEqual([
      'spec.secretToken.env',
    ]);
  });

  it('requires the key of a secretKeyRef', () => {
    expect(validateSource(githubSource({ secretToken: { secretKeyRef: { name: 'gh' } } }))).toEqual(
      [{ field: 'spec.secretToken.secretKeyRef.key', message: 'required' }],
    );
  });

  it('checks the name, key and fields of a secretKeyRef', () => {
    const problems = validateSource(
      githubSource({
        accessToken: { secretKeyRef: { name: 'Not_A_Name', key: 'a/b', extra: 1 } },
      }),
    );
    expect(fields(problems)).toEqual([
      'spec.accessToken.secretKeyRef.name',
      'spec.accessToken.secretKeyRef.key',
      'spec.accessToken.secretKeyRef.extra',
    ]);
  });

  it('refuses an unknown field of a secret', () => {
    expect(
      fields(validateSource(githubSource({ secretToken: { value: 'x', vaule: 'y' } }))),
    ).toEqual(['spec.secretToken.vaule']);
  });

  it('refuses an unknown spec field, naming it', () => {
    expect(validateSource(githubSource({ foo: 'bar' }))).toEqual([
      { field: 'spec.foo', message: 'unknown field' },
    ]);
  });

  it('refuses a githubAPIURL that is not an http(s) URL and a non-boolean secure', () => {
    expect(
      fields(validateSource(githubSource({ githubAPIURL: 'ghe.example.com', secure: 'yes' }))),
    ).toEqual(['spec.githubAPIURL', 'spec.secure']);
  });

  it.each(['id', 'type', 'source', 'specversion', 'time', 'subject', 'datacontenttype'])(
    'refuses ceOverrides.extensions overriding %s',
    (name) => {
      expect(
        validateSource(githubSource({ ceOverrides: { extensions: { [name]: 'x' } } })),
      ).toEqual([
        {
          field: `spec.ceOverrides.extensions.${name}`,
          message: `"${name}" is set by the source and cannot be overridden`,
        },
      ]);
    },
  );

  it('refuses an invalid extension name in ceOverrides', () => {
    const problems = validateSource(
      githubSource({ ceOverrides: { extensions: { 'Bad-Name': 'x' } } }),
    );
    expect(fields(problems)).toEqual(['spec.ceOverrides.extensions']);
    expect(problems[0]?.message).toContain('"Bad-Name"');
  });

  it('refuses ceOverrides fields other than extensions and non-string values', () => {
    expect(
      fields(
        validateSource(githubSource({ ceOverrides: { extensions: { team: 7 }, attributes: {} } })),
      ),
    ).toEqual(['spec.ceOverrides.attributes', 'spec.ceOverrides.extensions.team']);
  });

  it('reports every problem of a source at once', () => {
    const problems = validateSource(
      githubSource({
        ownerAndRepository: 'a/b/c',
        eventTypes: ['Push'],
        secretToken: {},
        foo: 1,
      }),
    );
    expect(fields(problems).sort()).toEqual(
      ['spec.eventTypes[0]', 'spec.foo', 'spec.ownerAndRepository', 'spec.secretToken'].sort(),
    );
  });
});

describe('validateSource: GitLabSource', () => {
  it("accepts Knative's example", () => {
    expect(validateSource(gitlabSource())).toEqual([]);
  });

  it('accepts a signing token and sslverify', () => {
    expect(
      validateSource(
        gitlabSource({ signingToken: { env: 'GITLAB_SIGNING_TOKEN' }, sslverify: true }),
      ),
    ).toEqual([]);
  });

  it('requires projectUrl', () => {
    expect(validateSource(without(gitlabSource, 'projectUrl'))).toEqual([
      { field: 'spec.projectUrl', message: 'required' },
    ]);
  });

  it.each(['gitlab.com/group/project', 'ftp://gitlab.com/group/project', 'not a url'])(
    'refuses the projectUrl %j',
    (projectUrl) => {
      const problems = validateSource(gitlabSource({ projectUrl }));
      expect(fields(problems)).toEqual(['spec.projectUrl']);
      expect(problems[0]?.message).toContain('is not an absolute http or https URL');
    },
  );

  it('refuses an eventTypes item that is not a trigger name ending in _events', () => {
    expect(validateSource(gitlabSource({ eventTypes: ['push_events', 'push'] }))).toEqual([
      {
        field: 'spec.eventTypes[1]',
        message: '"push" is not a GitLab webhook trigger (such as push_events)',
      },
    ]);
  });

  it('validates the signing token like the other secrets', () => {
    expect(validateSource(gitlabSource({ signingToken: {} }))).toEqual([
      { field: 'spec.signingToken', message: 'give exactly one of value, env and secretKeyRef' },
    ]);
    expect(fields(validateSource(gitlabSource({ signingToken: { env: 'bad-name' } })))).toEqual([
      'spec.signingToken.env',
    ]);
  });

  it('refuses a non-boolean sslverify, GitHub fields and unknown fields', () => {
    expect(
      fields(validateSource(gitlabSource({ sslverify: 'no', ownerAndRepository: 'a/b', foo: 1 }))),
    ).toEqual(['spec.sslverify', 'spec.ownerAndRepository', 'spec.foo']);
  });

  it('refuses ceOverrides.extensions overriding id', () => {
    expect(
      fields(validateSource(gitlabSource({ ceOverrides: { extensions: { id: 'x' } } }))),
    ).toEqual(['spec.ceOverrides.extensions.id']);
  });
});

function resource(spec: Record<string, unknown>): Resource {
  return {
    apiVersion: 'sources.knative.dev/v1alpha1',
    kind: 'GitLabSource',
    metadata: { name: 'gl', namespace: 'default' },
    spec: { projectUrl: 'https://gitlab.com/a/b', sink: { uri: 'http://x/' }, ...spec },
  };
}

describe('redactSecrets', () => {
  it('redacts and restores nested secrets (KafkaSource net) without touching siblings', () => {
    const input = resource({
      net: {
        sasl: { enable: true, user: { value: 'alice' }, password: { env: 'KAFKA_PASSWORD' } },
        tls: { enable: false },
      },
    });
    const redacted = redactSecrets(input);
    expect(redacted.spec.net).toEqual({
      sasl: { enable: true, user: { value: REDACTED }, password: { env: 'KAFKA_PASSWORD' } },
      tls: { enable: false },
    });
    expect(input.spec.net).toEqual({
      sasl: { enable: true, user: { value: 'alice' }, password: { env: 'KAFKA_PASSWORD' } },
      tls: { enable: false },
    });
    expect(restoreSecrets(redacted, input)).toEqual(input);
  });

  it('replaces every secret value with REDACTED and keeps the rest of the spec', () => {
    const input = resource({
      secretToken: { value: 'token' },
      signingToken: { value: 'whsec_c2lnbmluZw==' },
      accessToken: { value: 'glpat-xyz' },
    });
    expect(redactSecrets(input)).toEqual(
      resource({
        secretToken: { value: REDACTED },
        signingToken: { value: REDACTED },
        accessToken: { value: REDACTED },
      }),
    );
  });

  it('leaves env and secretKeyRef secrets alone', () => {
    const input = resource({
      secretToken: { env: 'GITLAB_TOKEN' },
      accessToken: { secretKeyRef: { name: 'gitlabsecret', key: 'accessToken' } },
    });
    expect(redactSecrets(input)).toEqual(input);
  });

  it('redacts only the value fields among mixed secrets', () => {
    const input = resource({
      secretToken: { env: 'GITLAB_TOKEN' },
      signingToken: { value: 'whsec_c2lnbmluZw==' },
    });
    expect(redactSecrets(input).spec).toEqual({
      projectUrl: 'https://gitlab.com/a/b',
      sink: { uri: 'http://x/' },
      secretToken: { env: 'GITLAB_TOKEN' },
      signingToken: { value: REDACTED },
    });
  });

  it('does not change its input', () => {
    const input = resource({ secretToken: { value: 'token' } });
    const copy = structuredClone(input);
    const redacted = redactSecrets(input);
    expect(input).toEqual(copy);
    expect(redacted.spec.secretToken).toEqual({ value: REDACTED });
  });

  it('redacts no other field, not even one named value', () => {
    const input = resource({ ceOverrides: { extensions: { value: 'shown' } } });
    expect(redactSecrets(input)).toEqual(input);
  });
});

describe('restoreSecrets', () => {
  const stored = resource({
    secretToken: { value: 'token' },
    signingToken: { value: 'whsec_c2lnbmluZw==' },
  });

  it('puts the stored value back where the incoming manifest has REDACTED', () => {
    expect(restoreSecrets(redactSecrets(stored), stored)).toEqual(stored);
  });

  it('keeps a new value the incoming manifest gives', () => {
    const incoming = resource({
      secretToken: { value: 'new token' },
      signingToken: { value: REDACTED },
    });
    expect(restoreSecrets(incoming, stored).spec).toMatchObject({
      secretToken: { value: 'new token' },
      signingToken: { value: 'whsec_c2lnbmluZw==' },
    });
  });

  it('keeps REDACTED when nothing is stored for that field or there is no stored resource', () => {
    const incoming = resource({ accessToken: { value: REDACTED } });
    expect(restoreSecrets(incoming, stored)).toEqual(incoming);
    expect(restoreSecrets(incoming, undefined)).toEqual(incoming);
  });

  it('keeps REDACTED when the stored secret is an env or secretKeyRef', () => {
    const incoming = resource({ secretToken: { value: REDACTED } });
    expect(restoreSecrets(incoming, resource({ secretToken: { env: 'TOKEN' } }))).toEqual(incoming);
  });

  it('keeps a switch from a value to env or secretKeyRef', () => {
    const incoming = resource({
      secretToken: { env: 'TOKEN' },
      signingToken: { secretKeyRef: { name: 's', key: 'k' } },
    });
    expect(restoreSecrets(incoming, stored)).toEqual(incoming);
  });

  it('does not change its inputs', () => {
    const incoming = redactSecrets(stored);
    const incomingCopy = structuredClone(incoming);
    const storedCopy = structuredClone(stored);
    restoreSecrets(incoming, stored);
    expect(incoming).toEqual(incomingCopy);
    expect(stored).toEqual(storedCopy);
  });
});
