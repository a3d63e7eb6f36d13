/**
 * The sign-in throttle (SPEC §7): failed logins per account and per source address, password-reset
 * requests per account and per address, and invitations per organization and per recipient, on the
 * sign-in limiter (never the one that serves
 * per-key rate limits: src/rate-limit/limiter.ts). Redis when configured, so the limits hold across
 * nodes; in memory it fails closed: a full table refuses the attempt rather than forget a lockout.
 *
 * An attempt is counted atomically when it starts, before the slow password hash, so a burst of
 * parallel guesses cannot all pass; an attempt that did not fail is taken back. The address is
 * counted first and the account only when the address is allowed, so a source that is refused can
 * open no per-account windows (junk addresses from one source cannot fill the table).
 *
 * Accounts are keyed by the normalised address (users/email.ts), the same form the lookup uses.
 * Addresses are keyed per IPv4 address, and per /64 for IPv6: one subscriber usually holds a whole
 * /64, so counting each of its 2^64 addresses apart would be no limit at all.
 */
import type { RateLimiter } from '../rate-limit/limiter.js';
import { parseAddress } from '../net/cidr.js';

const SIGN_IN_WINDOW_SECONDS = 15 * 60;
export const ACCOUNT_FAILURE_LIMIT = 5;
export const ADDRESS_FAILURE_LIMIT = 50;

const RESET_WINDOW_SECONDS = 60 * 60;
/** Reset mails per account and hour: enough for a lost mail or two, too few to flood a mailbox. */
export const RESET_ACCOUNT_LIMIT = 3;
export const RESET_ADDRESS_LIMIT = 20;

const INVITATION_WINDOW_SECONDS = 60 * 60;
/** Invitations an organization may send an hour: Paygate must not become a tenant's mass mailer. */
export const INVITATION_ORGANIZATION_LIMIT = 100;
/** Invitations one address may receive an hour, from every organization together: no mail bombing. */
export const INVITATION_RECIPIENT_LIMIT = 5;

/** The per-address bucket of a client address: the address itself for IPv4, its /64 for IPv6. */
export function addressBucket(ip: string | null): string {
  const address = ip ? parseAddress(ip) : null;
  if (!address) return ip ?? 'unknown';
  if (address.kind() === 'ipv4') return address.toString();
  const parts = (address as { parts: number[] }).parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(':')}::/64`;
}

export class FailureThrottle {
  constructor(private readonly limiter: RateLimiter) {}

  /** Counts a sign-in attempt; returns the seconds to wait when it is refused, else 0. */
  async attemptSignIn(email: string, ip: string | null): Promise<number> {
    const address = await this.limiter.consume(`login:ip:${addressBucket(ip)}`, ADDRESS_FAILURE_LIMIT, SIGN_IN_WINDOW_SECONDS);
    if (!address.allowed) return address.retryAfterSeconds;
    const account = await this.limiter.consume(`login:acct:${email}`, ACCOUNT_FAILURE_LIMIT, SIGN_IN_WINDOW_SECONDS);
    return account.allowed ? 0 : account.retryAfterSeconds;
  }

  /** The attempt signed in: the account's failures are forgotten, the address's attempt taken back. */
  async signedIn(email: string, ip: string | null): Promise<void> {
    await Promise.all([this.limiter.reset(`login:acct:${email}`), this.limiter.release(`login:ip:${addressBucket(ip)}`)]);
  }

  /** The attempt was no failure (the database failed): it counts against no one. */
  async notCounted(email: string, ip: string | null): Promise<void> {
    await Promise.all([this.limiter.release(`login:acct:${email}`), this.limiter.release(`login:ip:${addressBucket(ip)}`)]);
  }

  /** The password was reset through the mailbox: the account's lockout ends. */
  async accountRecovered(email: string): Promise<void> {
    await this.limiter.reset(`login:acct:${email}`);
  }

  /**
   * Counts an invitation (POST .../members). Returns the seconds to wait when the organization or the
   * recipient address is over its limit, else 0. Keyed by the address, never by an account, so a
   * refusal says nothing about whether one exists.
   */
  async attemptInvitation(organizationId: string, email: string): Promise<number> {
    const organization = await this.limiter.consume(`invite:org:${organizationId}`, INVITATION_ORGANIZATION_LIMIT, INVITATION_WINDOW_SECONDS);
    if (!organization.allowed) return organization.retryAfterSeconds;
    const recipient = await this.limiter.consume(`invite:to:${email}`, INVITATION_RECIPIENT_LIMIT, INVITATION_WINDOW_SECONDS);
    return recipient.allowed ? 0 : recipient.retryAfterSeconds;
  }

  /**
   * Counts a password-reset request. `address` is the seconds to wait when the source is over its
   * limit (then the account is not counted); `mail` says whether this account may be mailed now.
   */
  async attemptReset(email: string, ip: string | null): Promise<{ address: number; mail: boolean }> {
    const address = await this.limiter.consume(`reset:ip:${addressBucket(ip)}`, RESET_ADDRESS_LIMIT, RESET_WINDOW_SECONDS);
    if (!address.allowed) return { address: address.retryAfterSeconds, mail: false };
    const account = await this.limiter.consume(`reset:acct:${email}`, RESET_ACCOUNT_LIMIT, RESET_WINDOW_SECONDS);
    return { address: 0, mail: account.allowed };
  }
}
