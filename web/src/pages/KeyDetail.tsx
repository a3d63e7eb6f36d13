/**
 * One API key's page (/admin/keys/<id>, /admin/system/keys/<id>): what the key does (SPEC §12) and
 * what can be done with it.
 *
 * - requests over time by outcome (a uPlot chart, its figures in a table), per secret;
 * - during a rotation's grace period: when and from where the previous secret was last used, and
 *   "End grace now" (POST .../end-grace);
 * - recent refusals by code; the key's audit trail; the actions of the key list (edit, rotate with
 *   "end when the old secret is idle", revoke, delete), sharing its dialogs.
 *
 * The page refreshes itself every few seconds, so a grace period that ends on evidence (idle) or
 * by time is seen ending without a reload.
 */
import { useCallback, useEffect, useId, useRef, useState, type MouseEvent } from 'react';
import type { ApiKey, AuditEvent, Tier } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { FlagBadges } from '../components/FlagBadges';
import { Badge, Empty, ErrorAlert, Loading, StatusMessage } from '../components/Feedback';
import { UsageChart } from '../components/UsageChart';
import { TableHead } from '../components/TableHead';
import { formatDate, formatDateLong, formatRelative } from '../format';
import { useAction, useLoad, usePageTitle } from '../hooks';
import {
  RANGES,
  REFUSAL_CODES,
  formatCount,
  formatRate,
  isMissingRoute,
  keyIntelligenceApi,
  keysBase,
  rangeOf,
  refusals,
  type KeyUsage,
  type KeyView,
  type RangeId,
} from '../key-intelligence-api';
import { Link, navigate } from '../router';
import { useSession } from '../session';
import { DeleteDialog, EditKeyDialog, RevokeDialog, RotateDialog, SecretDialog, type Rotation } from './Keys';

/** How often the page asks again (the usage figures are complete within 10 s, SPEC §12). */
const REFRESH_MS = 5_000;

type Modal =
  | { kind: 'none' }
  | { kind: 'edit' }
  | { kind: 'rotate' }
  | { kind: 'secret'; key: ApiKey; rotation: Rotation }
  | { kind: 'revoke' }
  | { kind: 'delete' }
  | { kind: 'end-grace' };

interface KeyDetailProps {
  tier: Tier;
  organizationId: string | null;
  keyId: string;
}

export function KeyDetailPage({ tier, organizationId, keyId }: KeyDetailProps) {
  const { permissions, me } = useSession();
  const can = (action: 'read' | 'update' | 'delete') => (tier === 'system' ? me.user.isGlobalAdmin : permissions.can(`api_key:${action}`));
  const listPath = tier === 'system' ? '/system/keys' : '/keys';
  const base = keysBase(tier, organizationId);

  const key = useLoad(() => keyIntelligenceApi.getKey(tier, organizationId, keyId));
  const [range, setRange] = useState<RangeId>('24h');
  const rangeRef = useRef(range);
  rangeRef.current = range;
  const usage = useLoad(() => keyIntelligenceApi.usage(tier, organizationId, keyId, rangeOf(rangeRef.current)));
  const [modal, setModal] = useState<Modal>({ kind: 'none' });
  const [status, setStatus] = useState<string | null>(null);
  const opener = useRef<HTMLElement | null>(null);
  const rangeId = useId();

  usePageTitle(key.data ? key.data.name : 'API key');

  const reloadKey = key.reload;
  const reloadUsage = usage.reload;
  const shownRange = useRef(range);
  useEffect(() => {
    // useLoad fetched the first range on mount; fetch again only when another is chosen.
    if (shownRange.current === range) return;
    shownRange.current = range;
    void reloadUsage();
  }, [range, reloadUsage]);
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState !== 'visible' || document.querySelector('dialog[open]')) return;
      void reloadKey();
      void reloadUsage();
    }, REFRESH_MS);
    return () => clearInterval(timer);
  }, [reloadKey, reloadUsage]);

  const open = (next: Modal) => (event: MouseEvent<HTMLElement>) => {
    opener.current = event.currentTarget;
    setStatus(null);
    setModal(next);
  };
  const close = useCallback(() => setModal({ kind: 'none' }), []);
  const replace = (next: ApiKey) => {
    const { secret: _secret, ...view } = next;
    key.setData(() => view);
  };

  if (!can('read')) {
    return (
      <>
        <h1 tabIndex={-1}>API key</h1>
        <p>You don't have access to API keys here.</p>
      </>
    );
  }
  if (key.loading && !key.data) return <Loading />;
  if (!key.data) {
    return (
      <>
        <h1 tabIndex={-1}>API key</h1>
        <ErrorAlert error={key.error} />
        <p>
          <Link to={listPath}>Back to the keys</Link>
        </p>
      </>
    );
  }
  const k = key.data;
  const inGrace = k.previousSecretExpiresAt !== null && Date.parse(k.previousSecretExpiresAt) > Date.now() && k.status !== 'revoked';

  return (
    <>
      <p className="breadcrumb">
        <Link to={listPath}>{tier === 'system' ? 'System API keys' : 'API keys'}</Link>
      </p>
      <div className="page-header">
        <div>
          <h1 tabIndex={-1}>{k.name}</h1>
          <div className="key-status-line">
            <Badge status={k.status} />
            <FlagBadges flags={k.flags} />
          </div>
          {k.description && <p className="page-lead">{k.description}</p>}
        </div>
        <div className="page-actions">
          {k.status !== 'revoked' && can('update') && (
            <button type="button" className="button" onClick={open({ kind: 'edit' })}>
              Edit
            </button>
          )}
          {(k.status === 'active' || k.status === 'quarantined') && can('update') && (
            <button type="button" className="button" onClick={open({ kind: 'rotate' })}>
              Rotate
            </button>
          )}
          {k.status !== 'revoked' && can('delete') && (
            <button type="button" className="button" onClick={open({ kind: 'revoke' })}>
              Revoke
            </button>
          )}
          {can('delete') && (
            <button type="button" className="button button-danger-outline" onClick={open({ kind: 'delete' })}>
              Delete
            </button>
          )}
        </div>
      </div>

      <StatusMessage message={status} />
      {key.error !== null && <ErrorAlert error={key.error} />}

      {k.status === 'quarantined' && (
        <div className="alert alert-warning">
          <p className="alert-title">This key is quarantined: a token of it was reported leaked.</p>
          <p>Requests that need a read scope still work; every other request is refused with api_key_quarantined. Rotate it to issue a new secret (the leaked one ends at once), or revoke it.</p>
        </div>
      )}

      {inGrace && <GraceCard apiKey={k} usage={usage.data} canEnd={can('update')} onEnd={open({ kind: 'end-grace' })} />}

      <section className="card" aria-labelledby={`${rangeId}-facts`}>
        <h2 id={`${rangeId}-facts`}>Key</h2>
        <dl className="facts">
          <div>
            <dt>Id</dt>
            <dd>
              <code>{k.id}</code>
            </dd>
          </div>
          <div>
            <dt>Hint</dt>
            <dd>
              <code className="hint-code">…{k.hint}</code>
            </dd>
          </div>
          <div>
            <dt>Created</dt>
            <dd>{formatDate(k.createdAt)}</dd>
          </div>
          <div>
            <dt>Last used</dt>
            <dd>
              {k.lastUsedAt ? (
                <>
                  {formatDate(k.lastUsedAt)}
                  {k.lastUsedIp && <div className="muted small">from {sightingOf(k.lastUsedIp, k.lastUserAgent ?? null)}</div>}
                </>
              ) : (
                'Never'
              )}
            </dd>
          </div>
          <div>
            <dt>Rotated</dt>
            <dd>{formatDate(k.rotatedAt, 'Never')}</dd>
          </div>
          <div>
            <dt>Expires</dt>
            <dd>{formatDate(k.expiresAt, 'Never')}</dd>
          </div>
          {k.revokedAt && (
            <div>
              <dt>Revoked</dt>
              <dd>{formatDate(k.revokedAt)}</dd>
            </div>
          )}
          <div>
            <dt>Allowed IPs</dt>
            <dd>{k.allowedIps && k.allowedIps.length > 0 ? k.allowedIps.join(', ') : 'Any'}</dd>
          </div>
          <div>
            <dt>Rate limit</dt>
            <dd>{k.rateLimit ? `${k.rateLimit.requests} req / ${k.rateLimit.windowSeconds} s` : 'None'}</dd>
          </div>
          <div className="facts-wide">
            <dt>Scopes</dt>
            <dd>
              {k.scopes.length === 0 ? (
                <span className="muted">none</span>
              ) : (
                <ul className="chips">
                  {k.scopes.map((s) => (
                    <li key={s} className="chip">
                      {s}
                    </li>
                  ))}
                </ul>
              )}
            </dd>
          </div>
        </dl>
      </section>

      {!isMissingRoute(usage.error) && (
        <section className="card" aria-labelledby={`${rangeId}-requests`}>
          <div className="card-header">
            <h2 id={`${rangeId}-requests`}>Requests</h2>
            <div className="field inline-field">
              <label htmlFor={`${rangeId}-range`}>Range</label>
              <select id={`${rangeId}-range`} value={range} onChange={(e) => setRange(e.target.value as RangeId)}>
                {RANGES.map((r) => (
                  <option key={r.id} value={r.id}>
                    {r.label}
                  </option>
                ))}
              </select>
            </div>
          </div>
          {usage.error !== null && <ErrorAlert error={usage.error} />}
          {usage.loading && !usage.data && <Loading />}
          {usage.data && <UsageSection usage={usage.data} rangeLabel={RANGES.find((r) => r.id === range)!.label.toLowerCase()} />}
        </section>
      )}

      {usage.data && <RefusalsSection usage={usage.data} rangeLabel={RANGES.find((r) => r.id === range)!.label.toLowerCase()} />}

      <AuditTrail tier={tier} organizationId={organizationId} keyId={keyId} />

      {modal.kind === 'edit' && (
        <EditKeyDialog
          tier={tier}
          base={base}
          apiKey={k}
          onClose={close}
          onSaved={(saved) => {
            if (saved) replace(saved);
            setStatus(saved ? `Saved ${saved.name}.` : 'Nothing changed.');
            close();
          }}
        />
      )}
      {modal.kind === 'rotate' && (
        <RotateDialog
          tier={tier}
          apiKey={k}
          base={base}
          onClose={close}
          onRotated={(rotated, rotation) => {
            replace(rotated);
            setModal({ kind: 'secret', key: rotated, rotation });
          }}
        />
      )}
      {modal.kind === 'secret' && <SecretDialog apiKey={modal.key} rotation={modal.rotation} onClose={close} returnFocus={opener.current} />}
      {modal.kind === 'revoke' && (
        <RevokeDialog
          apiKey={k}
          base={base}
          onClose={close}
          onRevoked={(revoked) => {
            replace(revoked);
            setStatus(`Revoked ${revoked.name}.`);
            close();
          }}
        />
      )}
      {modal.kind === 'delete' && <DeleteDialog apiKey={k} base={base} onClose={close} onDeleted={() => navigate(listPath, { replace: true })} />}
      {modal.kind === 'end-grace' && (
        <ConfirmDialog
          title="End the grace period"
          confirmLabel="End grace now"
          danger
          returnFocus={opener.current}
          onClose={close}
          onConfirm={async () => {
            const ended = await keyIntelligenceApi.endGrace(tier, organizationId, keyId);
            replace(ended);
            setStatus('Grace period ended: the previous secret no longer works.');
            close();
          }}
        >
          <p>
            The previous secret of <strong>{k.name}</strong> stops working at once on every node. Integrations still using it are refused from
            now on; the current secret is not affected.
          </p>
        </ConfirmDialog>
      )}
    </>
  );
}

/** "10.1.2.3 (curl/8.5)" */
function sightingOf(ip: string, userAgent: string | null): string {
  return userAgent ? `${ip} (${userAgent})` : ip;
}

function GraceCard({ apiKey, usage, canEnd, onEnd }: { apiKey: KeyView; usage: KeyUsage | null; canEnd: boolean; onEnd: (event: MouseEvent<HTMLElement>) => void }) {
  const lastUsed = apiKey.previousSecretLastUsedAt ?? null;
  return (
    <section className="card grace-card" aria-label="Grace period">
      <h2>Rotation grace period</h2>
      <p className="grace-evidence">
        {lastUsed ? (
          <>
            Previous secret last used {formatRelative(lastUsed)}
            {apiKey.previousSecretLastUsedIp && <> from {sightingOf(apiKey.previousSecretLastUsedIp, apiKey.previousSecretLastUserAgent ?? null)}</>}
            <span className="muted"> ({formatDateLong(lastUsed)})</span>.
          </>
        ) : (
          <>Previous secret not used since the rotation.</>
        )}
      </p>
      <p>
        It stops working {formatRelative(apiKey.previousSecretExpiresAt!)}, at {formatDateLong(apiKey.previousSecretExpiresAt!)}
        {apiKey.lastUsedAt && apiKey.rotatedAt && Date.parse(apiKey.lastUsedAt) >= Date.parse(apiKey.rotatedAt) ? (
          <>; the new secret was last used {formatRelative(apiKey.lastUsedAt)}.</>
        ) : (
          <>; the new secret has not been used yet.</>
        )}
      </p>
      {usage && (
        <p className="muted small">
          In this range: {formatCount(usage.totals.bySecret.current)} with the current secret, {formatCount(usage.totals.bySecret.previous)} with the
          previous secret.
        </p>
      )}
      {canEnd && (
        <button type="button" className="button button-danger-outline" onClick={onEnd}>
          End grace now
        </button>
      )}
    </section>
  );
}

function UsageSection({ usage, rangeLabel }: { usage: KeyUsage; rangeLabel: string }) {
  const refused = refusals(usage.totals);
  return (
    <>
      <dl className="facts usage-totals">
        <div>
          <dt>Requests</dt>
          <dd data-testid="usage-total">{formatCount(usage.totals.total)}</dd>
        </div>
        <div>
          <dt>Let through</dt>
          <dd>{formatCount(usage.totals.outcomes.ok)}</dd>
        </div>
        <div>
          <dt>Refused</dt>
          <dd>
            {formatCount(refused)} <span className="muted">({formatRate(refused, usage.totals.total)})</span>
          </dd>
        </div>
        <div>
          <dt>Current secret</dt>
          <dd>{formatCount(usage.totals.bySecret.current)}</dd>
        </div>
        <div>
          <dt>Previous secret</dt>
          <dd>{formatCount(usage.totals.bySecret.previous)}</dd>
        </div>
      </dl>
      <UsageChart buckets={usage.buckets} granularity={usage.granularity} label={`Requests by outcome, ${rangeLabel}, per ${usage.granularity}`} />
    </>
  );
}

function RefusalsSection({ usage, rangeLabel }: { usage: KeyUsage; rangeLabel: string }) {
  const id = useId();
  const rows = REFUSAL_CODES.map((code) => {
    const count = usage.totals.outcomes[code];
    const latest = [...usage.buckets].reverse().find((b) => b.outcomes[code] > 0);
    return { code, count, latest: latest?.start ?? null };
  })
    .filter((r) => r.count > 0)
    .sort((a, b) => b.count - a.count);
  return (
    <section className="card" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Recent refusals</h2>
      {rows.length === 0 ? (
        <Empty>No refusals in the {rangeLabel}.</Empty>
      ) : (
        <div className="table-wrap">
          <table className="table table-compact">
            <TableHead columns={['Code', 'Requests', 'Latest']} />
            <tbody>
              {rows.map((r) => (
                <tr key={r.code}>
                  <td>
                    <code>{r.code}</code>
                  </td>
                  <td>{formatCount(r.count)}</td>
                  <td>{r.latest ? `${BUCKET_NAMES[usage.granularity]} starting ${formatDate(r.latest)}` : '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

const BUCKET_NAMES = { minute: 'Minute', hour: 'Hour', day: 'Day' } as const;

/** Events the key's trail loads at a time (the first page, then per "Look further back"). */
const AUDIT_PAGE_SIZE = 100;

interface Trail {
  events: AuditEvent[];
  /** Cursor of the events that target the key; null when the oldest was reached. */
  next: string | null;
}

/**
 * The key's audit trail: the events whose target is the key (its lifecycle, grace ends, leaks;
 * `?targetId=`) and those it made itself as actor (refusals; `?actorType=api_key&actorId=`).
 */
function AuditTrail({ tier, organizationId, keyId }: { tier: Tier; organizationId: string | null; keyId: string }) {
  const { permissions, me } = useSession();
  const id = useId();
  const canRead = tier === 'system' ? me.user.isGlobalAdmin : permissions.can('audit:read');
  const more = useAction();

  const targeting = useCallback(
    async (cursor: string | undefined): Promise<{ found: AuditEvent[]; next: string | null }> => {
      const page = await keyIntelligenceApi.auditPage(tier, organizationId, { limit: AUDIT_PAGE_SIZE, targetId: keyId, startingAfter: cursor });
      const last = page.data[page.data.length - 1];
      return { found: page.data, next: page.hasMore && last ? last.id : null };
    },
    [tier, organizationId, keyId],
  );

  const trail = useLoad<Trail | null>(async () => {
    if (!canRead) return null;
    const [targeted, acted] = await Promise.all([
      targeting(undefined),
      keyIntelligenceApi.auditPage(tier, organizationId, { limit: AUDIT_PAGE_SIZE, actorType: 'api_key', actorId: keyId }),
    ]);
    return { events: merge(targeted.found, acted.data), next: targeted.next };
  });

  const lookFurther = async () => {
    const current = trail.data;
    if (!current?.next) return;
    await more.run(async () => {
      const further = await targeting(current.next!);
      trail.setData((t) => (t ? { events: merge(t.events, further.found), next: further.next } : t));
    });
  };

  return (
    <section className="card" aria-labelledby={`${id}-title`}>
      <h2 id={`${id}-title`}>Audit trail</h2>
      {!canRead ? (
        <p className="muted">You don't have access to the audit log here.</p>
      ) : (
        <>
          {trail.loading && !trail.data && <Loading />}
          <ErrorAlert error={trail.error} />
          {trail.data &&
            (trail.data.events.length === 0 ? (
              <Empty>No events about this key.</Empty>
            ) : (
              <div className="table-wrap">
                <table className="table table-compact">
                  <TableHead columns={['When', 'Action', 'Actor', 'Outcome', 'IP', 'Details']} />
                  <tbody>
                    {trail.data.events.map((e) => (
                      <tr key={e.id}>
                        <td className="nowrap">{formatDateLong(e.at)}</td>
                        <td>
                          <code>{e.action}</code>
                        </td>
                        <td>
                          {e.actor.type}
                          {e.actor.id && <div className="cell-meta">{e.actor.id}</div>}
                        </td>
                        <td>
                          <Badge status={e.outcome} />
                        </td>
                        <td>{e.ip ?? '—'}</td>
                        <td className="audit-details">{detailsOf(e.details)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            ))}
          {trail.data?.next && (
            <div className="load-more">
              <button type="button" className="button button-secondary" onClick={() => void lookFurther()} disabled={more.busy}>
                {more.busy ? 'Loading…' : 'Look further back'}
              </button>
            </div>
          )}
          <ErrorAlert error={more.error} />
        </>
      )}
    </section>
  );
}

function merge(a: readonly AuditEvent[], b: readonly AuditEvent[]): AuditEvent[] {
  const byId = new Map<string, AuditEvent>();
  for (const e of [...a, ...b]) byId.set(e.id, e);
  return [...byId.values()].sort((x, y) => (x.at < y.at ? 1 : x.at > y.at ? -1 : x.id < y.id ? 1 : -1));
}

/** "graceEnded: idle, fields: previousSecretExpiresAt", at most a line or two. */
function detailsOf(details: Record<string, unknown>): string {
  const text = Object.entries(details ?? {})
    .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : Array.isArray(v) ? v.join(', ') : JSON.stringify(v)}`)
    .join('; ');
  return text.length > 200 ? `${text.slice(0, 199)}…` : text || '—';
}
