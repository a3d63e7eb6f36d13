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
];
