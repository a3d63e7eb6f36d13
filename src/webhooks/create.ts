/** Builds the webhook service and this node's delivery worker from the shared deps. */
import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { Work } from '../unit-of-work.js';
import type { Peppers } from '../keys/hash.js';
import type { Logger } from '../services.js';
import type { Metrics } from '../http/metrics.js';
import type { Mailer } from '../mail/mailer.js';
import { Sealer } from '../sealing.js';
import { SECRET_SEAL_INFO, WebhookService } from './service.js';
import { systemResolver } from './ssrf.js';
import { WebhookWorker } from './worker.js';

/** DNS lookups: within a request (create, update) and within one delivery attempt's 10 s. */
const CREATE_LOOKUP_MS = 2_000;
const DELIVERY_LOOKUP_MS = 5_000;

export function createWebhookServices(deps: {
  config: Config;
  db: Database;
  work: Work;
  peppers: Peppers;
  log: Logger;
  metrics: Metrics;
  mailer: Mailer | null;
}): { webhooks: WebhookService; webhookWorker: WebhookWorker } {
  const allowPrivate = deps.config.webhookAllowPrivate;
  const webhookWorker = new WebhookWorker({
    db: deps.db,
    work: deps.work,
    sealer: new Sealer(deps.peppers, SECRET_SEAL_INFO),
    log: deps.log,
    metrics: deps.metrics,
    mailer: deps.mailer,
    publicUrl: deps.config.publicUrl,
    allowPrivate,
    resolve: systemResolver(DELIVERY_LOOKUP_MS),
  });
  const webhooks = new WebhookService({
    db: deps.db,
    work: deps.work,
    peppers: deps.peppers,
    allowPrivate,
    resolve: systemResolver(CREATE_LOOKUP_MS),
    kick: () => webhookWorker.kick(),
  });
  // Events this node commits are delivered at once; other nodes' are found by the poll.
  deps.work.onEmitted(() => webhookWorker.kick());
  return { webhooks, webhookWorker };
}
