/** The source adapters this build runs, by kind (the composition root hands them to the runtime). */
import type { PullingAdapter, WebhookAdapter } from '../sources/contracts.js';
import { githubAdapter } from './github/index.js';
import { gitlabAdapter } from './gitlab/index.js';
import { kafkaSourceAdapter } from './kafka/index.js';
import { apiServerSourceAdapter } from './kubernetes/index.js';
import { mnsSourceAdapter } from './mns/index.js';
import { rocketmqSourceAdapter } from './rocketmq/index.js';

export const WEBHOOK_ADAPTERS: readonly WebhookAdapter[] = [githubAdapter, gitlabAdapter];

export const PULLING_ADAPTERS: readonly PullingAdapter[] = [
  kafkaSourceAdapter,
  rocketmqSourceAdapter,
  mnsSourceAdapter,
  apiServerSourceAdapter,
];
