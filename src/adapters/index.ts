/** The source adapters this build runs, by kind (the composition root hands them to the runtime). */
import type { WebhookAdapter } from '../sources/contracts.js';
import { githubAdapter } from './github/index.js';
import { gitlabAdapter } from './gitlab/index.js';

export const WEBHOOK_ADAPTERS: readonly WebhookAdapter[] = [githubAdapter, gitlabAdapter];
