/**
 * How a GitHub webhook payload becomes a CloudEvent's `subject` and extensions, event by event.
 *
 * For the events Knative's GitHubSource knows, the subject is the one Knative gives
 * (reference/knative.md 4.4): push the last part of `compare`, pull_request and issues the number,
 * create and delete the ref type, comments the last part of the comment's URL, label the label's
 * name, and so on. For events Knative does not know (discussion, workflow_run, ...), the subject is
 * the number or id of the thing the event is about (docs/sources.md lists them).
 *
 * Extensions: `owner` (the repository's owner, else the organization), `repository`, `sender`,
 * `action` and `installation` whenever the payload has them, and per event the ones Knative adds
 * (`ref`, `pusher`, `label`, `assignee`, `number`, ...). Ids are strings: a CloudEvents Integer is
 * 32 bits, and GitHub's ids outgrew that.
 */

type Json = Record<string, unknown>;
type Field = (payload: Json) => unknown;

/** The value at a dotted path (`pull_request.number`), or undefined. */
function at(path: string): Field {
  const keys = path.split('.');
  return (payload) => {
    let value: unknown = payload;
    for (const key of keys) {
      if (typeof value !== 'object' || value === null) return undefined;
      value = (value as Json)[key];
    }
    return value;
  };
}

/** The part of a URL after its last `/` (`.../compare/a...b` -> `a...b`). */
function lastPart(path: string): Field {
  const url = at(path);
  return (payload) => {
    const value = url(payload);
    return typeof value === 'string' ? value.slice(value.lastIndexOf('/') + 1) : undefined;
  };
}

/** The names of the wiki pages a gollum event changed, joined with commas. */
const pageNames: Field = (payload) => {
  const pages = payload.pages;
  if (!Array.isArray(pages)) return undefined;
  return pages.map((p) => String((p as Json).page_name)).join(',');
};

/** A payload value as an attribute value: strings and numbers as strings, booleans kept. */
function attribute(value: unknown): string | boolean | undefined {
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

interface EventRule {
  readonly subject?: Field;
  readonly extensions?: Readonly<Record<string, Field>>;
}

const ACTION = at('action');

const RULES: Readonly<Record<string, EventRule>> = {
  // Knative's table (eventing-github pkg/common/events.go).
  check_run: { subject: at('check_run.id') },
  check_suite: { subject: at('check_suite.id') },
  commit_comment: { subject: lastPart('comment.html_url') },
  create: { subject: at('ref_type'), extensions: { ref: at('ref') } },
  delete: { subject: at('ref_type'), extensions: { ref: at('ref') } },
  deployment: { subject: at('deployment.id') },
  deployment_status: { subject: at('deployment.id') },
  fork: { subject: at('forkee.id') },
  gollum: { subject: pageNames },
  installation: { subject: at('installation.id') },
  installation_repositories: { subject: at('installation.id') },
  integration_installation: { subject: at('installation.id') },
  integration_installation_repositories: { subject: at('installation.id') },
  issue_comment: { subject: lastPart('comment.html_url') },
  issues: {
    subject: at('issue.number'),
    extensions: { label: at('label.name'), assignee: at('assignee.login') },
  },
  label: { subject: at('label.name'), extensions: { label: at('label.name') } },
  member: { subject: at('member.id') },
  membership: { subject: at('member.id'), extensions: { scope: at('scope') } },
  milestone: { subject: at('milestone.number') },
  organization: { subject: ACTION },
  org_block: { subject: ACTION },
  page_build: { subject: at('id') },
  ping: { subject: at('hook_id') },
  project_card: { subject: ACTION },
  project_column: { subject: ACTION },
  project: { subject: ACTION },
  public: { subject: at('repository.id') },
  pull_request: {
    subject: at('pull_request.number'),
    extensions: {
      number: at('number'),
      label: at('label.name'),
      assignee: at('assignee.login'),
    },
  },
  pull_request_review_comment: { subject: at('comment.id') },
  pull_request_review: { subject: at('review.id'), extensions: { review: at('review.state') } },
  push: {
    subject: lastPart('compare'),
    extensions: {
      pusher: at('pusher.name'),
      ref: at('ref'),
      created: at('created'),
      deleted: at('deleted'),
      forced: at('forced'),
    },
  },
  release: { subject: at('release.tag_name'), extensions: { release: at('release.name') } },
  repository: { subject: at('repository.id') },
  repository_vulnerability_alert: { subject: at('alert.id') },
  security_advisory: { subject: at('security_advisory.ghsa_id') },
  status: {
    subject: at('sha'),
    extensions: { state: at('state'), name: at('name'), context: at('context') },
  },
  team: { subject: at('team.id') },
  team_add: { subject: at('repository.id') },
  watch: { subject: at('repository.id') },

  // Events Knative's table lacks: the id or number of what the event is about.
  branch_protection_rule: { subject: at('rule.id') },
  code_scanning_alert: { subject: at('alert.number') },
  dependabot_alert: { subject: at('alert.number') },
  deploy_key: { subject: at('key.id') },
  deployment_review: { subject: at('workflow_run.id') },
  discussion: { subject: at('discussion.number') },
  discussion_comment: { subject: lastPart('comment.html_url') },
  github_app_authorization: { subject: ACTION },
  marketplace_purchase: { subject: at('marketplace_purchase.account.login') },
  merge_group: { subject: at('merge_group.head_sha') },
  meta: { subject: at('hook_id') },
  package: { subject: at('package.id') },
  projects_v2_item: { subject: at('projects_v2_item.id') },
  pull_request_review_thread: { subject: at('thread.node_id') },
  repository_dispatch: { subject: ACTION },
  repository_import: { subject: at('status') },
  sponsorship: { subject: at('sponsorship.node_id') },
  star: { subject: at('repository.id') },
  workflow_dispatch: { subject: at('workflow') },
  workflow_job: { subject: at('workflow_job.id') },
  workflow_run: { subject: at('workflow_run.id') },
};

/** Extensions every event gets when its payload has them. */
const COMMON: Readonly<Record<string, Field>> = {
  owner: (p) => at('repository.owner.login')(p) ?? at('organization.login')(p),
  repository: at('repository.name'),
  sender: at('sender.login'),
  action: ACTION,
  installation: at('installation.id'),
};

export interface SubjectAndExtensions {
  readonly subject: string | undefined;
  readonly extensions: Record<string, string | boolean | undefined>;
}

/** The subject and extensions of a GitHub event `event` (the X-GitHub-Event header). */
export function subjectAndExtensions(event: string, payload: Json): SubjectAndExtensions {
  const rule = Object.hasOwn(RULES, event) ? RULES[event] : undefined;
  const extensions: Record<string, string | boolean | undefined> = {};
  for (const [name, field] of Object.entries({ ...COMMON, ...rule?.extensions })) {
    extensions[name] = attribute(field(payload));
  }
  const subject = rule?.subject === undefined ? undefined : attribute(rule.subject(payload));
  return { subject: subject === undefined ? undefined : String(subject), extensions };
}
