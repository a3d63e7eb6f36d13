/**
 * The sign-in throttle (SPEC §7): failed logins per account and per source address, password-reset
 * requests per source and reset mails per account, and invitations per organization and recipient,
 * on the sign-in limiters (never the one that serves per-key rate limits: src/rate-limit/limiter.ts).
 * Redis when configured, so the limits hold across nodes; in memory it fails closed: a full table
 * refuses the attempt rather than forget a lockout.
 *
 * Two tables, so that what anyone can open cannot crowd out the rest (src/services.ts):
 * - `addresses`: one window per source. IPv4 per address; IPv6 per /64 (one subscriber usually
 *   holds a whole /64, so counting each of its 2^64 addresses apart would be no limit at all), and
 *   hierarchically per /48 too: a /48 may open at most NEW_SOURCES_PER_NETWORK /64 windows per
 *   window, so one site cannot fill the table with its 65,536 /64s.
 * - `accounts`: per-account windows, opened only for accounts that exist (a login or reset for an
 *   unknown address opens none), and invitation counts (authenticated owners only). Every account
 *   window is opened by an attempt its source was allowed, so each source opens at most its own
 *   address limit of them.
 *
 * A sign-in for an unknown address still answers as one for an account would, lockout included:
 * its count lives in a small evictable memory of its own (`decoys`), which decides nothing that
 * matters for security (evicting it only forgets a lockout that protects no account).
 *
 * An attempt is counted atomically when it starts, before the slow password hash, so a burst of
 * parallel guesses cannot all pass; an attempt that did not fail is taken back. The source is
 * counted first and the account only when the source is allowed, so a refused source can open no
 * per-account windows.
 *
 * Accounts are keyed by the normalised address (users/email.ts), the same form the lookup uses.
 */
import type { RateLimiter } from '../rate-limit/limiter.js';
import { LruCache } from '../cache/lru.js';
import { parseAddress } from '../net/cidr.js';

const SIGN_IN_WINDOW_SECONDS = 15 * 60;
export const ACCOUNT_FAILURE_LIMIT = 5;
export const ADDRESS_FAILURE_LIMIT = 50;
/**
 * New /64 sources one IPv6 /48 may open per window (sign-in and reset each): a site with more
 * distinct failing subnets than this in 15 minutes (or resetting from more in an hour) waits.
 */
export const NEW_SOURCES_PER_NETWORK = 16;

const RESET_WINDOW_SECONDS = 60 * 60;
/** Reset mails per account and source an hour: enough for a lost mail or two from one place. */
export const RESET_ACCOUNT_SOURCE_LIMIT = 3;
/**
 * Reset mails per account an hour from every source together, so nobody floods a mailbox from
 * many addresses. Sources the account signed in from within RESET_KNOWN_SOURCE_DAYS are exempt
 * (they keep their own 3), so someone else's flood cannot starve the owner's own requests.
 */
export const RESET_ACCOUNT_LIMIT = 10;
export const RESET_KNOWN_SOURCE_DAYS = 30;
export const RESET_ADDRESS_LIMIT = 20;

const INVITATION_WINDOW_SECONDS = 60 * 60;
/** Invitations an organization may send an hour: Paygate must not become a tenant's mass mailer. */
export const INVITATION_ORGANIZATION_LIMIT = 100;
/** Invitations one organization may send one address an hour. */
export const INVITATION_RECIPIENT_LIMIT = 5;
/**
 * Invitations one address may receive an hour from every organization together (no mail bombing).
 * One organization contributes at most INVITATION_RECIPIENT_LIMIT of them, so blocking another
 * organization's invitations would take four organizations, which tenants cannot make themselves.
 */
export const INVITATION_RECIPIENT_CEILING = 20;

/** Unknown addresses whose sign-in attempts are counted for the same answer as an account's. */
const DECOYS = 10_000;

/**
 * Buckets of recent addresses: a refused request pays for parsing its address once per source, not
 * once per request (parsing is most of what noting a forged token costs). Emptied when full.
 */
const recentBuckets = new Map<string, string>();
const RECENT_BUCKETS = 10_000;

/** The per-address bucket of a client address: the address itself for IPv4, its /64 for IPv6. */
export function addressBucket(ip: string | null): string {
  if (ip === null) return 'unknown';
  let bucket = recentBuckets.get(ip);
  if (bucket === undefined) {
    bucket = bucketOf(ip);
    if (recentBuckets.size >= RECENT_BUCKETS) recentBuckets.clear();
    recentBuckets.set(ip, bucket);
  }
  return bucket;
}

function bucketOf(ip: string): string {
  const address = ip ? parseAddress(ip) : null;
  if (!address) return ip ?? 'unknown';
  if (address.kind() === 'ipv4') return address.toString();
  const parts = (address as { parts: number[] }).parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(':')}::/64`;
}

/** The network above the bucket: the /48 of an IPv6 address; null for IPv4 (and unparsable values). */
export function networkBucket(ip: string | null): string | null {
  const address = ip ? parseAddress(ip) : null;
  if (!address || address.kind() === 'ipv4') return null;
  const parts = (address as { parts: number[] }).parts.slice(0, 3).map((p) => p.toString(16));
  return `${parts.join(':')}::/48`;
}

export interface ThrottleLimiters {
  /** Windows per source (and per /48): anyone can open them. */
  addresses: RateLimiter;
  /** Windows per existing account, and per organization and recipient of invitations. */
  accounts: RateLimiter;
}

export class FailureThrottle {
  private readonly addresses: RateLimiter;
  private readonly accounts: RateLimiter;
  private readonly decoys = new LruCache<string, { count: number; end: number }>(DECOYS, SIGN_IN_WINDOW_SECONDS * 1000);

  constructor(limiters: ThrottleLimiters) {
    this.addresses = limiters.addresses;
    this.accounts = limiters.accounts;
  }

  /**
   * Counts an attempt from a source: its own window, and for a new IPv6 /64 window its /48's count
   * of new sources. Returns the seconds to wait when refused, else 0.
   */
  private async attemptFrom(kind: 'login' | 'reset', ip: string | null, limit: number, windowSeconds: number): Promise<number> {
    const key = `${kind}:ip:${addressBucket(ip)}`;
    const source = await this.addresses.consume(key, limit, windowSeconds);
    if (!source.allowed) return source.retryAfterSeconds;
    const network = networkBucket(ip);
    if (network && source.opened) {
      const sources = await this.addresses.consume(`${kind}:net:${network}`, NEW_SOURCES_PER_NETWORK, windowSeconds);
      if (!sources.allowed) {
        // The /64 window just opened gives its slot back: the /48 has all it may hold.
        await this.addresses.reset(key);
        return sources.retryAfterSeconds;
      }
    }
    return 0;
  }

  /** Counts a sign-in attempt against its source; returns the seconds to wait when refused, else 0. */
  async attemptSignIn(ip: string | null): Promise<number> {
    return this.attemptFrom('login', ip, ADDRESS_FAILURE_LIMIT, SIGN_IN_WINDOW_SECONDS);
  }

  /**
   * Counts a sign-in attempt against the account, once its source was allowed and the address
   * looked up: `exists` opens a real window; an unknown address only a decoy. Seconds to wait, or 0.
   */
  async attemptAccount(email: string, exists: boolean): Promise<number> {
    if (exists) {
      const account = await this.accounts.consume(`login:acct:${email}`, ACCOUNT_FAILURE_LIMIT, SIGN_IN_WINDOW_SECONDS);
      return account.allowed ? 0 : account.retryAfterSeconds;
    }
    const now = Date.now();
    let decoy = this.decoys.get(email, now);
    if (!decoy) this.decoys.set(email, (decoy = { count: 0, end: now + SIGN_IN_WINDOW_SECONDS * 1000 }), SIGN_IN_WINDOW_SECONDS * 1000, now);
    decoy.count++;
    return decoy.count > ACCOUNT_FAILURE_LIMIT ? Math.max(1, Math.ceil((decoy.end - now) / 1000)) : 0;
  }

  /** The attempt signed in: the account's failures are forgotten, the source's attempt taken back. */
  async signedIn(email: string, ip: string | null): Promise<void> {
    await Promise.all([this.accounts.reset(`login:acct:${email}`), this.addresses.release(`login:ip:${addressBucket(ip)}`)]);
  }

  /** The attempt was no failure (the database failed): it counts against no one. */
  async notCounted(email: string, ip: string | null, accountCounted: boolean): Promise<void> {
    await Promise.all([
      accountCounted ? this.accounts.release(`login:acct:${email}`) : undefined,
      this.addresses.release(`login:ip:${addressBucket(ip)}`),
    ]);
  }

  /** The password was reset through the mailbox: the account's lockout ends. */
  async accountRecovered(email: string): Promise<void> {
    await this.accounts.reset(`login:acct:${email}`);
  }

  /**
   * Counts an invitation (POST .../members). Returns the seconds to wait when the organization, the
   * organization's invitations to this address, or this address's from everyone are over their
   * limits, else 0. Keyed by the address, never by an account, so a refusal says nothing about
   * whether one exists.
   */
  async attemptInvitation(organizationId: string, email: string): Promise<number> {
    const organization = await this.accounts.consume(`invite:org:${organizationId}`, INVITATION_ORGANIZATION_LIMIT, INVITATION_WINDOW_SECONDS);
    if (!organization.allowed) return organization.retryAfterSeconds;
    const mine = await this.accounts.consume(`invite:to:${organizationId}:${email}`, INVITATION_RECIPIENT_LIMIT, INVITATION_WINDOW_SECONDS);
    if (!mine.allowed) return mine.retryAfterSeconds;
    const everyone = await this.accounts.consume(`invite:to:${email}`, INVITATION_RECIPIENT_CEILING, INVITATION_WINDOW_SECONDS);
    return everyone.allowed ? 0 : everyone.retryAfterSeconds;
  }

  /** Counts a password-reset request against its source: the seconds to wait when refused, else 0. */
  async attemptReset(ip: string | null): Promise<number> {
    return this.attemptFrom('reset', ip, RESET_ADDRESS_LIMIT, RESET_WINDOW_SECONDS);
  }

  /**
   * Whether an existing account may be mailed a reset link now, for a request from `ip`: 3 an hour
   * per account and source, and 10 an hour per account from sources it never signed in from
   * (`knownSource`: it did, within RESET_KNOWN_SOURCE_DAYS; such a request still counts toward the
   * 10, so the owner's own requests use up what strangers may send). Only for accounts that exist.
   */
  async attemptResetMail(email: string, ip: string | null, knownSource: boolean): Promise<boolean> {
    const source = await this.accounts.consume(`reset:acct:${email}|${addressBucket(ip)}`, RESET_ACCOUNT_SOURCE_LIMIT, RESET_WINDOW_SECONDS);
    if (!source.allowed) return false;
    const account = await this.accounts.consume(`reset:acct:${email}`, RESET_ACCOUNT_LIMIT, RESET_WINDOW_SECONDS);
    return account.allowed || knownSource;
  }
}
