/**
 * Customer portal (SPEC §5): magic links issued hashed and consumed once, portal sessions bound to
 * one client of one organization, and the portal's view of that client's invoices.
 */
import type { Database, Queryable } from '../db/database.js';
import type { UnitOfWork, Work } from '../unit-of-work.js';
import type { Config } from '../config.js';
import type { SettingsService } from '../settings/service.js';
import type { ClientService } from '../payments/clients/service.js';
import type { InvoiceService, InvoiceView } from '../payments/invoices/service.js';
import type { CheckoutService, CheckoutView } from '../payments/checkouts/service.js';
import type { CardBrake } from '../payments/checkouts/brake.js';
import type { RequestContext } from '../auth/context.js';
import { SYSTEM_ACTOR } from '../audit/events.js';
import { AppError, notFound, validationError } from '../errors.js';
import { newId } from '../ids.js';
import { hashToken, isTokenShaped, newToken } from './tokens.js';

/** A portal session lasts an hour from sign-in: long enough to pay, short on a shared computer. */
export const PORTAL_SESSION_TTL_MINUTES = 60;

export interface MagicLinkInput {
  clientId: string;
  ttlMinutes?: number;
}

/** The create response. `url` holds the secret token; it is shown here once and stored only hashed. */
export interface MagicLinkView {
  id: string;
  object: 'portal_link';
  clientId: string;
  url: string;
  expiresAt: string;
  /** The effective lifetime: min(requested, system portalMagicLinkTtlMinutes). */
  ttlMinutes: number;
}

export interface PortalSession {
  id: string;
  organizationId: string;
  organizationName: string;
  clientId: string;
  clientName: string;
  expiresAt: Date;
}

export interface RequestMeta {
  ip: string | null;
  requestId: string | null;
}

interface SessionRow {
  id: string;
  organization_id: string;
  organization_name: string;
  client_id: string;
  client_name: string;
  expires_at: Date;
}

export class PortalService {
  constructor(
    protected readonly deps: {
      config: Config;
      db: Database;
      work: Work;
      settings: SettingsService;
      clients: ClientService;
      invoices: InvoiceService;
      checkouts: CheckoutService;
      brake: CardBrake;
    },
  ) {}

  /** The effective lifetime of a new link: the system setting caps whatever is requested. */
  async effectiveTtlMinutes(q: Queryable, requested: number | undefined): Promise<number> {
    if (requested !== undefined && (!Number.isInteger(requested) || requested < 1)) {
      throw validationError([{ path: '/ttlMinutes', message: 'must be an integer >= 1' }]);
    }
    const { portalMagicLinkTtlMinutes: cap } = await this.deps.settings.get(q);
    return requested === undefined ? cap : Math.min(requested, cap);
  }

  /**
   * Issues a single-use magic link for a client of this organization (another organization's
   * client is 404), audited in the same transaction. The token itself goes nowhere but the response.
   */
  async createLink(tx: UnitOfWork, ctx: RequestContext, organizationId: string, input: MagicLinkInput): Promise<MagicLinkView> {
    const ttlMinutes = await this.effectiveTtlMinutes(tx, input.ttlMinutes);
    const client = await this.deps.clients.get(tx, organizationId, input.clientId);
    const token = newToken();
    const id = newId('portalLink');
    // Expiry on the database clock, the same clock the redemption compares against.
    const [row] = await tx.query<{ expires_at: Date }>(
      `INSERT INTO portal_links (id, organization_id, client_id, token_hash, expires_at, created_by)
       VALUES ($1, $2, $3, $4, now() + make_interval(mins => $5::int), $6)
       RETURNING expires_at`,
      [id, organizationId, client.id, hashToken(token), ttlMinutes, JSON.stringify(ctx.actor)],
    );
    const expiresAt = row!.expires_at.toISOString();
    // Security: the audit row names the link and the client, never the token.
    tx.audit({
      action: 'portal_link.created',
      actor: ctx.actor,
      organizationId,
      target: { type: 'client', id: client.id },
      ip: ctx.ip,
      requestId: ctx.requestId,
      details: { portalLinkId: id, ttlMinutes, expiresAt },
    });
    const url = `${this.deps.config.publicUrl}/portal/login?token=${token}`;
    return { id, object: 'portal_link', clientId: client.id, url, expiresAt, ttlMinutes };
  }

  /**
   * Consumes a magic link and opens a portal session; null when the token is used, expired, unknown
   * or its client or organization is gone.
   *
   * Exactly one of simultaneous redemptions wins: the conditional UPDATE takes the row lock, and a
   * concurrent UPDATE waits for it, then re-checks `used_at IS NULL` against the committed row and
   * matches nothing (READ COMMITTED re-evaluation).
   */
  async redeem(token: unknown, meta: RequestMeta): Promise<{ sessionToken: string; session: PortalSession } | null> {
    if (!isTokenShaped(token)) return null;
    return this.deps.work.run(async (tx) => {
      const [link] = await tx.query<{ id: string; organization_id: string; client_id: string; expires_at: Date; used_at: Date }>(
        `UPDATE portal_links l SET used_at = now()
         WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > now()
           AND EXISTS (SELECT 1 FROM clients c JOIN organizations o ON o.id = c.organization_id
                       WHERE c.id = l.client_id AND c.organization_id = l.organization_id
                         AND c.deleted_at IS NULL AND o.status = 'active')
         RETURNING l.id, l.organization_id, l.client_id, l.expires_at, l.used_at`,
        [hashToken(token)],
      );
      if (!link) return null;
      const sessionToken = newToken();
      const id = newId('portalSession');
      await tx.query(
        `INSERT INTO portal_sessions (id, organization_id, client_id, token_hash, link_id, expires_at)
         VALUES ($1, $2, $3, $4, $5, now() + make_interval(mins => $6::int))`,
        [id, link.organization_id, link.client_id, hashToken(sessionToken), link.id, PORTAL_SESSION_TTL_MINUTES],
      );
      // The client is no actor type of SPEC §9 (user | api_key | system): Paygate records it on the
      // client's behalf, naming the link as target and the client in the details.
      tx.audit({
        action: 'portal_link.redeemed',
        actor: SYSTEM_ACTOR,
        organizationId: link.organization_id,
        target: { type: 'portal_link', id: link.id },
        ip: meta.ip,
        requestId: meta.requestId,
        details: { clientId: link.client_id, portalSessionId: id },
      });
      // The link as the API shows it, without its url: that holds the (now spent) token.
      const redeemed = { id: link.id, object: 'portal_link', clientId: link.client_id, expiresAt: link.expires_at.toISOString(), redeemedAt: link.used_at.toISOString() };
      tx.emit({ type: 'portal_link.redeemed', organizationId: link.organization_id, object: redeemed });
      const [session] = await tx.query<SessionRow>(`${SESSION_SELECT} WHERE s.id = $1`, [id]);
      return { sessionToken, session: toSession(session!) };
    });
  }

  /** The live session a cookie names; null when unknown, ended, expired, or its client or organization is gone. */
  async session(sessionToken: unknown): Promise<PortalSession | null> {
    if (!isTokenShaped(sessionToken)) return null;
    const [row] = await this.deps.db.query<SessionRow>(
      `${SESSION_SELECT} WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > now()
         AND c.deleted_at IS NULL AND o.status = 'active'`,
      [hashToken(sessionToken)],
    );
    return row ? toSession(row) : null;
  }

  async endSession(id: string): Promise<void> {
    await this.deps.db.query('UPDATE portal_sessions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL', [id]);
  }

  /** What the portal shows: the session's client's invoices, drafts excluded, newest first. */
  async invoices(session: PortalSession): Promise<InvoiceView[]> {
    return this.deps.invoices.listForClient(session.organizationId, session.clientId);
  }

  /**
   * The checkout the Pay button of one of the session's client's open invoices leads to: the open
   * one it made before for that invoice, else a new one (a click is never a fresh set of attempts;
   * the brake counts per invoice and client anyway). An invoice of another client or organization,
   * and a draft (the portal never shows drafts), is 404; a paid or void one is 409; one whose
   * declines are over the card-testing brake (or whose payer's address or merchant is) is
   * `429 rate_limited` with Retry-After. `source` is the payer's address as brake.ts sourceOf() gives it.
   */
  async payInvoice(session: PortalSession, invoiceId: string, source: string | null = null): Promise<CheckoutView> {
    const back = `${this.deps.config.publicUrl}/portal`;
    const urls = { successUrl: back, cancelUrl: back };
    return this.deps.work.run(async (tx) => {
      // The invoice row lock serialises clicks: simultaneous ones find (or make) the same checkout.
      const invoice = await this.deps.invoices.get(tx, session.organizationId, invoiceId, { forUpdate: true });
      if (invoice.clientId !== session.clientId || invoice.status === 'draft') throw notFound('invoice');
      if (invoice.status !== 'open') throw new AppError('conflict', `This invoice is ${invoice.status} and cannot be paid`);
      // The checkout's own limit needs no look: its declines are its invoice's, in the same window.
      const subjects = { checkoutId: null, invoiceId: invoice.id, clientId: invoice.clientId, organizationId: session.organizationId, source };
      const trip = await this.deps.brake.check(tx, subjects);
      if (trip) {
        throw new AppError('rate_limited', 'Too many declined card attempts', {
          headers: { 'Retry-After': String(trip.retryAfterSeconds) },
          extra: { brake: trip.subject },
        });
      }
      const existing = await this.deps.checkouts.reusableForInvoice(tx, session.organizationId, invoice.id, urls);
      return existing ?? this.deps.checkouts.createForInvoice(tx, session.organizationId, invoice.id, urls);
    });
  }
}

const SESSION_SELECT = `
  SELECT s.id, s.organization_id, o.name AS organization_name, s.client_id, c.name AS client_name, s.expires_at
  FROM portal_sessions s
  JOIN clients c ON c.id = s.client_id AND c.organization_id = s.organization_id
  JOIN organizations o ON o.id = s.organization_id`;

const toSession = (r: SessionRow): PortalSession => ({
  id: r.id,
  organizationId: r.organization_id,
  organizationName: r.organization_name,
  clientId: r.client_id,
  clientName: r.client_name,
  expiresAt: r.expires_at,
});
