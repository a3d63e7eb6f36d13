/**
 * The one migration history. Append new migrations; never edit one that has shipped.
 * SQL stays within PostgreSQL 13+ so that the embedded server (18) and older servers agree.
 */
export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    id: 1,
    name: 'core',
    sql: `
CREATE TABLE organizations (
  id text PRIMARY KEY,
  name text NOT NULL,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deleted')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

CREATE TABLE users (
  id text PRIMARY KEY,
  email text NOT NULL,
  password_hash text,
  is_global_admin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE memberships (
  organization_id text NOT NULL REFERENCES organizations(id),
  user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (organization_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Invitations: a hashed one-time token lets an invited member set a password.
CREATE TABLE invitations (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_hash bytea NOT NULL UNIQUE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  ended_at timestamptz,
  ip text,
  user_agent text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

-- Every API key id ever issued, never deleted: ids are unique forever, even after a key is deleted.
CREATE TABLE api_key_ids (
  id text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  id text PRIMARY KEY REFERENCES api_key_ids(id),
  tier text NOT NULL CHECK (tier IN ('organization', 'system')),
  organization_id text REFERENCES organizations(id),
  name text NOT NULL,
  description text,
  scopes text[] NOT NULL,
  secret_hash bytea NOT NULL,
  pepper_version integer NOT NULL,
  hint text NOT NULL,
  previous_secret_hash bytea,
  previous_pepper_version integer,
  previous_secret_expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  rotated_at timestamptz,
  allowed_ips text[],
  rate_limit_requests integer,
  rate_limit_window_seconds integer,
  CHECK ((tier = 'organization') = (organization_id IS NOT NULL))
);
CREATE INDEX api_keys_org_idx ON api_keys (organization_id, created_at, id);
CREATE INDEX api_keys_tier_idx ON api_keys (tier, created_at, id);

CREATE TABLE system_settings (
  id integer PRIMARY KEY CHECK (id = 1),
  portal_magic_link_ttl_minutes integer NOT NULL DEFAULT 15,
  api_key_rotation_grace_minutes integer NOT NULL DEFAULT 1440,
  api_key_max_lifetime_days integer,
  updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO system_settings (id) VALUES (1);

-- Append-only, hash-chained audit log. seq orders the chain; the head row serialises appends.
CREATE TABLE audit_events (
  seq bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  at timestamptz NOT NULL,
  action text NOT NULL,
  actor_type text NOT NULL,
  actor_id text,
  organization_id text,
  target jsonb,
  ip text,
  request_id text,
  outcome text NOT NULL,
  details jsonb NOT NULL DEFAULT '{}'::jsonb,
  prev_hash text NOT NULL,
  hash text NOT NULL
);
CREATE INDEX audit_events_org_idx ON audit_events (organization_id, seq);
CREATE INDEX audit_events_action_idx ON audit_events (action, seq);

CREATE TABLE audit_chain_head (
  id integer PRIMARY KEY CHECK (id = 1),
  seq bigint NOT NULL,
  hash text NOT NULL
);
INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, repeat('0', 64));

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Cache invalidations, numbered: a node that reconnects catches up from the last seq it saw.
CREATE TABLE invalidations (
  seq bigserial PRIMARY KEY,
  kind text NOT NULL,
  subject text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    id: 2,
    name: 'cluster nodes',
    sql: `
-- Live Paygate nodes: each heartbeats here; a change waits for the acknowledgement of every node
-- whose heartbeat is recent (see src/cache/invalidation.ts).
CREATE TABLE paygate_nodes (
  id text PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL,
  acked_seq bigint NOT NULL DEFAULT 0
);
`,
  },
  {
    id: 3,
    name: 'payments and portal',
    sql: `
-- Every payment object belongs to one organization; every query filters by it (tenant isolation).
CREATE TABLE clients (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  name text NOT NULL,
  email text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX clients_org_idx ON clients (organization_id, created_at, id);
CREATE INDEX clients_email_idx ON clients (organization_id, lower(email));

CREATE TABLE recurring_schedules (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  client_id text NOT NULL REFERENCES clients(id),
  interval text NOT NULL CHECK (interval IN ('day', 'week', 'month', 'year')),
  interval_count integer NOT NULL CHECK (interval_count BETWEEN 1 AND 1000),
  template jsonb NOT NULL,
  next_run_at timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('active', 'paused')),
  last_run_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX recurring_org_idx ON recurring_schedules (organization_id, created_at, id);
CREATE INDEX recurring_due_idx ON recurring_schedules (next_run_at) WHERE status = 'active' AND deleted_at IS NULL;

CREATE TABLE invoices (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  client_id text NOT NULL REFERENCES clients(id),
  status text NOT NULL CHECK (status IN ('draft', 'open', 'paid', 'void')),
  currency text NOT NULL,
  lines jsonb NOT NULL,
  total bigint NOT NULL CHECK (total >= 0),
  due_at timestamptz,
  recurring_schedule_id text REFERENCES recurring_schedules(id),
  -- One invoice per schedule run: a scheduler on several nodes can never issue a run twice.
  recurring_period_start timestamptz,
  finalized_at timestamptz,
  paid_at timestamptz,
  voided_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz,
  UNIQUE (recurring_schedule_id, recurring_period_start)
);
CREATE INDEX invoices_org_idx ON invoices (organization_id, created_at, id);
CREATE INDEX invoices_client_idx ON invoices (organization_id, client_id);

CREATE TABLE checkouts (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  status text NOT NULL CHECK (status IN ('open', 'completed', 'expired')),
  amount bigint NOT NULL CHECK (amount > 0),
  currency text NOT NULL,
  client_id text REFERENCES clients(id),
  invoice_id text REFERENCES invoices(id),
  success_url text,
  cancel_url text,
  transaction_id text,
  expires_at timestamptz NOT NULL,
  completed_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkouts_org_idx ON checkouts (organization_id, created_at, id);

CREATE TABLE transactions (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  status text NOT NULL CHECK (status IN ('succeeded', 'failed')),
  amount bigint NOT NULL CHECK (amount > 0),
  amount_refunded bigint NOT NULL DEFAULT 0,
  currency text NOT NULL,
  checkout_id text REFERENCES checkouts(id),
  client_id text REFERENCES clients(id),
  invoice_id text REFERENCES invoices(id),
  failure_code text,
  card_last4 text,
  card_brand text,
  metadata jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Never refund more than was captured, whatever the concurrency.
  CHECK (amount_refunded >= 0 AND amount_refunded <= amount)
);
CREATE INDEX transactions_org_idx ON transactions (organization_id, created_at, id);
-- At most one successful payment per checkout.
CREATE UNIQUE INDEX transactions_one_success_per_checkout ON transactions (checkout_id) WHERE status = 'succeeded';

CREATE TABLE refunds (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  transaction_id text NOT NULL REFERENCES transactions(id),
  amount bigint NOT NULL CHECK (amount > 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_txn_idx ON refunds (transaction_id);

CREATE TABLE data_io_jobs (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  kind text NOT NULL CHECK (kind IN ('export', 'import')),
  resource text NOT NULL CHECK (resource IN ('clients', 'invoices', 'transactions')),
  format text NOT NULL CHECK (format IN ('csv', 'json')),
  status text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
  progress integer NOT NULL DEFAULT 0,
  row_count integer NOT NULL DEFAULT 0,
  errors jsonb NOT NULL DEFAULT '[]'::jsonb,
  created_by jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,
  completed_at timestamptz
);
CREATE INDEX data_io_jobs_org_idx ON data_io_jobs (organization_id, created_at, id);
-- Job inputs and results in chunks, so any node can stream them and none holds them whole in memory.
CREATE TABLE data_io_chunks (
  job_id text NOT NULL REFERENCES data_io_jobs(id) ON DELETE CASCADE,
  part text NOT NULL CHECK (part IN ('input', 'output')),
  seq integer NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (job_id, part, seq)
);

CREATE TABLE idempotency_keys (
  organization_id text NOT NULL REFERENCES organizations(id),
  key text NOT NULL,
  method text NOT NULL,
  path text NOT NULL,
  request_hash text NOT NULL,
  response_status integer NOT NULL,
  response_body jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (organization_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

-- Portal magic links and sessions: only hashes of their tokens are stored.
CREATE TABLE portal_links (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  client_id text NOT NULL REFERENCES clients(id),
  token_hash bytea NOT NULL UNIQUE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_by jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE portal_sessions (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  client_id text NOT NULL REFERENCES clients(id),
  token_hash bytea NOT NULL UNIQUE,
  link_id text NOT NULL REFERENCES portal_links(id),
  expires_at timestamptz NOT NULL,
  ended_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    id: 4,
    name: 'recurring schedules: calendar anchor',
    sql: `
-- The instant every run of a schedule is counted from, so month-end dates do not drift: a schedule
-- anchored on Jan 31 runs Feb 28, Mar 31, Apr 30 (not Feb 28, Mar 28, Apr 28). Reset when the
-- interval or nextRunAt is changed.
ALTER TABLE recurring_schedules ADD COLUMN anchor_at timestamptz;
UPDATE recurring_schedules SET anchor_at = next_run_at;
ALTER TABLE recurring_schedules ALTER COLUMN anchor_at SET NOT NULL;
`,
  },
  {
    id: 5,
    name: 'checkouts and transactions: processor references, attempt lookups',
    sql: `
-- Which processor captured a payment, and its reference there: a real adapter refunds by it.
ALTER TABLE transactions ADD COLUMN processor text NOT NULL DEFAULT 'test';
ALTER TABLE transactions ADD COLUMN processor_reference text;
ALTER TABLE refunds ADD COLUMN processor_reference text;
-- The pay page counts a checkout's failed attempts; the API filters transactions by checkout.
CREATE INDEX transactions_checkout_idx ON transactions (checkout_id, created_at);
CREATE INDEX checkouts_invoice_idx ON checkouts (invoice_id) WHERE invoice_id IS NOT NULL;
`,
  },
  {
    id: 6,
    name: 'data I/O jobs: claims and heartbeats',
    sql: `
-- Which node's claim runs a job (a token per claim: every write of the job checks it), how often it
-- was claimed, and the running node's last heartbeat: a job whose node died is claimed again.
ALTER TABLE data_io_jobs ADD COLUMN claimed_by text;
ALTER TABLE data_io_jobs ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE data_io_jobs ADD COLUMN heartbeat_at timestamptz;
-- The workers' poll: only unfinished jobs are indexed.
CREATE INDEX data_io_jobs_queue_idx ON data_io_jobs (created_at) WHERE status IN ('queued', 'running');
`,
  },
  {
    id: 7,
    name: 'cluster nodes: advertised timing and process instance',
    sql: `
-- Each node advertises its heartbeat period: publishers wait for a peer by the peer's own window,
-- and a node whose period differs from a live peer's refuses to start (src/cache/invalidation.ts).
-- instance names the process behind a row, so a live twin (same PAYGATE_NODE_ID) is told from a
-- restarted node's own stale row.
ALTER TABLE paygate_nodes ADD COLUMN heartbeat_ms integer NOT NULL DEFAULT 500;
ALTER TABLE paygate_nodes ADD COLUMN instance text;
`,
  },
  {
    id: 8,
    name: 'data I/O jobs: uploading state',
    sql: `
-- An import's file is stored before its job is queued, without a transaction held open while the
-- client sends. Until then the job is 'uploading': no API read shows it and no worker claims it.
ALTER TABLE data_io_jobs DROP CONSTRAINT data_io_jobs_status_check;
ALTER TABLE data_io_jobs ADD CONSTRAINT data_io_jobs_status_check
  CHECK (status IN ('uploading', 'queued', 'running', 'completed', 'failed'));
`,
  },
  {
    id: 10,
    name: 'accounts: normalised e-mail addresses, organization invitations, password resets',
    sql: `
-- Addresses are stored in the one normal form of src/users/email.ts (trimmed, lower-cased by
-- Unicode's default mapping, NFC) and compared with "=", so PostgreSQL's own lower(), whose result
-- depends on the database's LC_CTYPE, no longer takes part. ASCII addresses (all the API could
-- store) are lower-cased here exactly as the application does (the "C" rule touches A-Z only);
-- others get PostgreSQL's lower() under the database's locale, which agrees with Unicode's default
-- mapping except for a few special cases (dotted capital I, final sigma).
UPDATE users SET email = CASE
  WHEN email ~ '^[ -~]*$' THEN lower(btrim(email, E' \t\n\r\f\x0B') COLLATE "C")
  ELSE normalize(lower(normalize(btrim(email, E' \t\n\r\f\x0B'), NFC)), NFC)
END;
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (email);

-- An invitation is to an organization, for an address, with a role; the membership is created
-- only when it is accepted through its link (SPEC §7). Links issued before this migration set the
-- password of a user the inviter had created, who is already a member: each unused one becomes an
-- invitation to that user's first organization, so the link still lets its holder set the password.
ALTER TABLE invitations ADD COLUMN organization_id text REFERENCES organizations(id);
ALTER TABLE invitations ADD COLUMN email text;
ALTER TABLE invitations ADD COLUMN role text CHECK (role IN ('owner', 'admin', 'developer', 'viewer'));
ALTER TABLE invitations ADD COLUMN created_by jsonb NOT NULL DEFAULT '{"type": "system", "id": null}';
ALTER TABLE invitations RENAME COLUMN used_at TO accepted_at;
ALTER TABLE invitations ADD COLUMN accepted_by text REFERENCES users(id) ON DELETE SET NULL;
ALTER TABLE invitations ADD COLUMN cancelled_at timestamptz;
UPDATE invitations i SET organization_id = first.organization_id, email = u.email, role = first.role
FROM users u CROSS JOIN LATERAL (
  SELECT m.organization_id, m.role FROM memberships m WHERE m.user_id = u.id ORDER BY m.created_at LIMIT 1
) first
WHERE u.id = i.user_id AND i.accepted_at IS NULL AND u.password_hash IS NULL;
DELETE FROM invitations WHERE organization_id IS NULL;
ALTER TABLE invitations DROP COLUMN user_id;
ALTER TABLE invitations ALTER COLUMN organization_id SET NOT NULL;
ALTER TABLE invitations ALTER COLUMN email SET NOT NULL;
ALTER TABLE invitations ALTER COLUMN role SET NOT NULL;
ALTER TABLE invitations ALTER COLUMN created_by DROP DEFAULT;
-- At most one open invitation per organization and address: a new one supersedes the old.
CREATE UNIQUE INDEX invitations_open_key ON invitations (organization_id, email) WHERE accepted_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX invitations_org_idx ON invitations (organization_id, created_at, id) WHERE accepted_at IS NULL AND cancelled_at IS NULL;

-- Password resets (SPEC §7): only a hash of each single-use token is stored.
CREATE TABLE password_resets (
  token_hash bytea PRIMARY KEY,
  user_id text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_resets_user_idx ON password_resets (user_id);
`,
  },
  {
    id: 11,
    name: 'card-testing brake, sealed idempotent responses, uploads per organization',
    sql: `
-- Every declined card attempt, kept for the brake's longest window (src/payments/checkouts/brake.ts):
-- counted per checkout, invoice, client, source address (IPv4, IPv6 /64) and organization, each
-- through an index of its own. Purged past that window, so the source addresses are not kept.
CREATE TABLE card_failures (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  checkout_id text NOT NULL REFERENCES checkouts(id),
  invoice_id text,
  client_id text,
  source text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_failures_checkout_idx ON card_failures (checkout_id, created_at);
CREATE INDEX card_failures_invoice_idx ON card_failures (invoice_id, created_at) WHERE invoice_id IS NOT NULL;
CREATE INDEX card_failures_client_idx ON card_failures (client_id, created_at) WHERE client_id IS NOT NULL;
CREATE INDEX card_failures_source_idx ON card_failures (source, created_at) WHERE source IS NOT NULL;
CREATE INDEX card_failures_org_idx ON card_failures (organization_id, created_at);
CREATE INDEX card_failures_created_idx ON card_failures (created_at);

-- A response that holds a secret (a portal magic link) is stored sealed (AES-256-GCM), never in
-- response_body (src/payments/idempotency.ts).
ALTER TABLE idempotency_keys ADD COLUMN response_sealed bytea;

-- Uploads in progress, and jobs queued or running, per organization across nodes (their caps:
-- src/payments/data-io/service.ts).
CREATE INDEX data_io_jobs_uploading_idx ON data_io_jobs (organization_id, heartbeat_at) WHERE status = 'uploading';
CREATE INDEX data_io_jobs_pending_idx ON data_io_jobs (organization_id) WHERE status IN ('queued', 'running');
`,
  },
  {
    id: 12,
    name: 'audit checkpoints; audit tables closed to the runtime role',
    sql: `
-- Signed checkpoints of the audit chain's head (SPEC §15, src/audit/checkpoints.ts). n orders them;
-- period_start is the scheduled period a checkpoint was taken for (null: taken on demand), unique so
-- that however many nodes try, one checkpoint per period is recorded.
CREATE TABLE audit_checkpoints (
  n bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  seq bigint NOT NULL,
  hash text NOT NULL,
  at timestamptz NOT NULL,
  signature text NOT NULL,
  period_start timestamptz UNIQUE
);

CREATE FUNCTION paygate_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION paygate_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION paygate_append_only();

-- The chain head always names the newest event (seq 0 and the zero hash for an empty chain). The
-- runtime role may UPDATE the head (every append moves it) but can remove no event, so it cannot
-- move the head back either: a reset of the head is a change of the table's owner, which only
-- checkpoints reveal. The trigger runs after the append's INSERT in the same statement and sees it.
CREATE FUNCTION audit_chain_head_follows_events() RETURNS trigger AS $$
DECLARE
  newest_seq bigint;
  newest_hash text;
BEGIN
  SELECT seq, hash INTO newest_seq, newest_hash FROM audit_events ORDER BY seq DESC LIMIT 1;
  IF NEW.id IS DISTINCT FROM OLD.id
     OR NEW.seq IS DISTINCT FROM coalesce(newest_seq, 0)
     OR NEW.hash IS DISTINCT FROM coalesce(newest_hash, repeat('0', 64)) THEN
    RAISE EXCEPTION 'audit_chain_head must name the newest audit event';
  END IF;
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_chain_head_follows BEFORE UPDATE ON audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION audit_chain_head_follows_events();
CREATE TRIGGER audit_chain_head_no_delete BEFORE DELETE ON audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION paygate_append_only();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION paygate_append_only();

-- Nobody but the owner holds anything on the audit tables unless granted: the runtime role's exact
-- privileges are granted at migration time (src/db/roles.ts), to the role DATABASE_URL names.
REVOKE ALL ON audit_events, audit_chain_head, audit_checkpoints FROM PUBLIC;
`,
  },
  {
    id: 13,
    name: 'invitations: the old set-password links alone may set a password',
    sql: `
-- An invitation link never sets the password of an existing account (src/organizations/members.ts),
-- except the links migration 10 made from the old flow's unused set-password links: each was issued
-- by the organization the account belongs to, for that account, which never had a password. They
-- are tied to their account here; no other organization's invitation can set its password.
ALTER TABLE invitations ADD COLUMN sets_password_of text REFERENCES users(id) ON DELETE CASCADE;
UPDATE invitations i SET sets_password_of = u.id
FROM users u
WHERE u.email = i.email AND u.password_hash IS NULL
  AND i.accepted_at IS NULL AND i.cancelled_at IS NULL
  AND i.created_by = '{"type": "system", "id": null}'::jsonb
  AND EXISTS (SELECT 1 FROM memberships m WHERE m.organization_id = i.organization_id AND m.user_id = u.id);
`,
  },
  {
    id: 14,
    name: 'webhooks: endpoints, the event outbox, deliveries and their attempts',
    sql: `
-- Webhook endpoints (SPEC §16, src/webhooks/). The signing secret is sealed (AES-256-GCM under a
-- pepper-derived key, src/sealing.ts), never stored in clear: Paygate must read it back to sign.
-- failing_since: the first failed attempt since the last success; failing for 3 days disables it.
CREATE TABLE webhook_endpoints (
  id text PRIMARY KEY,
  organization_id text NOT NULL REFERENCES organizations(id),
  url text NOT NULL,
  events text[] NOT NULL,
  status text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
  description text,
  secret_sealed bytea NOT NULL,
  previous_secret_sealed bytea,
  previous_secret_expires_at timestamptz,
  failing_since timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org_idx ON webhook_endpoints (organization_id, created_at, id);

-- The outbox: one row per event, written by the unit of work in the transaction of the change that
-- caused it (src/unit-of-work.ts). body is the JSON delivered, byte for byte, on every attempt.
-- fanned_out_at: set once the delivery worker made its deliveries (src/webhooks/worker.ts).
CREATE TABLE webhook_events (
  seq bigserial PRIMARY KEY,
  id text NOT NULL UNIQUE,
  organization_id text NOT NULL,
  type text NOT NULL,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  fanned_out_at timestamptz
);
CREATE INDEX webhook_events_pending_idx ON webhook_events (seq) WHERE fanned_out_at IS NULL;
CREATE INDEX webhook_events_created_idx ON webhook_events (created_at);

-- One delivery per (event, endpoint). claimed_by is the attempt in flight (its id), until
-- claim_expires_at: past it, another node may attempt again.
CREATE TABLE webhook_deliveries (
  id text PRIMARY KEY,
  organization_id text NOT NULL,
  endpoint_id text NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
  event_id text NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
  event_type text NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz,
  last_attempt_at timestamptz,
  last_response_status integer,
  last_error text,
  claimed_by text,
  claim_expires_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at, id);
CREATE INDEX webhook_deliveries_org_idx ON webhook_deliveries (organization_id, created_at, id);

-- Every attempt: written when claimed (outcome null until recorded: a node that died mid-attempt
-- leaves it so), completed with what the receiver answered.
CREATE TABLE webhook_attempts (
  id text PRIMARY KEY,
  delivery_id text NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
  started_at timestamptz NOT NULL DEFAULT now(),
  duration_ms integer,
  response_status integer,
  response_body text,
  error text,
  outcome text CHECK (outcome IN ('succeeded', 'failed'))
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, started_at);

-- Open checkouts by expiry: the sweep that stores their expiry and emits checkout.expired
-- (src/payments/checkouts/service.ts).
CREATE INDEX checkouts_open_expiry_idx ON checkouts (expires_at) WHERE status = 'open';
`,
  },
  {
    id: 15,
    name: 'usage per key and per secret; rotation that completes on evidence',
    sql: `
-- SPEC §12 (src/usage/). Verifications counted in memory on each node and flushed in batches into
-- one row per key and bucket, at the three granularities at once (additive upserts): minute rows
-- are kept 7 days, hour rows 90 days, day rows 2 years (src/usage/retention.ts).
CREATE TABLE api_key_usage (
  key_id text NOT NULL,
  granularity text NOT NULL CHECK (granularity IN ('minute', 'hour', 'day')),
  bucket timestamptz NOT NULL,
  total bigint NOT NULL DEFAULT 0,
  ok bigint NOT NULL DEFAULT 0,
  invalid_api_key bigint NOT NULL DEFAULT 0,
  api_key_revoked bigint NOT NULL DEFAULT 0,
  api_key_expired bigint NOT NULL DEFAULT 0,
  ip_not_allowed bigint NOT NULL DEFAULT 0,
  rate_limited bigint NOT NULL DEFAULT 0,
  insufficient_scope bigint NOT NULL DEFAULT 0,
  api_key_quarantined bigint NOT NULL DEFAULT 0,
  current_secret bigint NOT NULL DEFAULT 0,
  previous_secret bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (key_id, granularity, bucket)
);
CREATE INDEX api_key_usage_retention_idx ON api_key_usage (granularity, bucket);

-- Per secret: when, from where and with which client each secret was last seen; when the current
-- secret was first seen (a rotation moves the current secret's figures to the previous one's).
ALTER TABLE api_keys ADD COLUMN secret_first_used_at timestamptz;
ALTER TABLE api_keys ADD COLUMN secret_last_used_at timestamptz;
ALTER TABLE api_keys ADD COLUMN last_used_ip text;
ALTER TABLE api_keys ADD COLUMN last_user_agent text;
ALTER TABLE api_keys ADD COLUMN previous_secret_last_used_at timestamptz;
ALTER TABLE api_keys ADD COLUMN previous_secret_last_used_ip text;
ALTER TABLE api_keys ADD COLUMN previous_secret_last_user_agent text;
-- rotate's retireWhenIdleMinutes: the grace ends once the previous secret is idle that long.
ALTER TABLE api_keys ADD COLUMN retire_when_idle_minutes integer CHECK (retire_when_idle_minutes BETWEEN 1 AND 1440);
-- The grace sweep (src/usage/grace.ts) looks only at keys in a grace period.
CREATE INDEX api_keys_grace_idx ON api_keys (previous_secret_expires_at) WHERE previous_secret_hash IS NOT NULL;
`,
  },
  {
    id: 16,
    name: 'leaked keys: the leaked marker, quarantine, and the leakedKeyAction setting',
    sql: `
-- SPEC §13 (src/leaks/). leaked_at: when a token of the key (current or previous secret) was
-- reported leaked; the key's flag "leaked" until a rotation replaces the leaked secret.
-- quarantined_at: set while the key is quarantined (status "quarantined": ":read" scopes only);
-- rotating the key clears both. A key is quarantined only because it leaked.
ALTER TABLE api_keys ADD COLUMN leaked_at timestamptz;
ALTER TABLE api_keys ADD COLUMN quarantined_at timestamptz;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_quarantine_is_a_leak CHECK (quarantined_at IS NULL OR leaked_at IS NOT NULL);

-- What Paygate does with a key whose token is reported leaked: revoke it (default) or quarantine it.
ALTER TABLE system_settings ADD COLUMN leaked_key_action text NOT NULL DEFAULT 'revoke'
  CHECK (leaked_key_action IN ('revoke', 'quarantine'));
`,
  },
  {
    id: 17,
    name: 'key hygiene: settings, expiry warnings',
    sql: `
-- Key hygiene thresholds (SPEC §14), in days; null = off (src/keys/flags.ts).
ALTER TABLE system_settings ADD COLUMN api_key_rotation_max_age_days integer CHECK (api_key_rotation_max_age_days BETWEEN 1 AND 3650);
ALTER TABLE system_settings ADD COLUMN api_key_inactive_days integer CHECK (api_key_inactive_days BETWEEN 1 AND 3650);
ALTER TABLE system_settings ADD COLUMN api_key_expiry_warning_days integer CHECK (api_key_expiry_warning_days BETWEEN 1 AND 365);

-- Expiry warnings (src/keys/expiry-warnings.ts): the expiry a key's owners were warned about, and
-- when. A warning is claimed by setting both in the transaction that writes its webhook event, so
-- exactly one node warns; a key whose expires_at changes afterwards differs from expiry_warned_for
-- and is warned again once the new date is within the window.
ALTER TABLE api_keys ADD COLUMN expiry_warned_for timestamptz;
ALTER TABLE api_keys ADD COLUMN expiry_warned_at timestamptz;
CREATE INDEX api_keys_expiry_idx ON api_keys (expires_at) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;
`,
  },
  {
    id: 18,
    name: 'audit events by target',
    sql: `
-- The audit list's targetId filter (src/audit/service.ts): one key's trail, newest first, without
-- walking the organization's (or, system-wide, every) event. Events without a target are left out.
CREATE INDEX audit_events_target_idx ON audit_events ((target->>'id'), seq) WHERE target IS NOT NULL;
`,
  },
];
