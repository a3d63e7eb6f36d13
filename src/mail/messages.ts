/**
 * The text of Paygate's mails. Plain text only: nothing to render, nothing remote to load, and a
 * link a person can read before following it. The same invitation text goes to a new person and to
 * someone who already has an account (the link's page tells them apart), so mailing it does the
 * same work either way.
 */
import type { MailMessage } from './mailer.js';

export function invitationMail(input: {
  to: string;
  organizationName: string;
  role: string;
  invitedBy: string | null;
  url: string;
  expiresAt: Date;
}): MailMessage {
  const who = input.invitedBy ? `${input.invitedBy} invited you` : 'You are invited';
  return {
    to: input.to,
    subject: `Join ${input.organizationName} on Paygate`,
    text: [
      `${who} to join the organization "${input.organizationName}" on Paygate as ${input.role}.`,
      '',
      'Open this link to accept the invitation:',
      input.url,
      '',
      'New to Paygate? You will choose a password there. Already have a Paygate account with this',
      'address? Sign in there to accept.',
      '',
      `The link works once, until ${input.expiresAt.toISOString()}. If you did not expect this`,
      'invitation, ignore this mail: nothing happens unless the link is opened and accepted.',
    ].join('\n'),
  };
}

export function passwordResetMail(input: { to: string; url: string; expiresAt: Date }): MailMessage {
  return {
    to: input.to,
    subject: 'Reset your Paygate password',
    text: [
      'Someone (hopefully you) asked to reset the password of the Paygate account with this address.',
      '',
      'Open this link to choose a new password:',
      input.url,
      '',
      `The link works once, until ${input.expiresAt.toISOString()}. Choosing a new password signs the`,
      'account out everywhere. If you did not ask for this, ignore this mail: your password stays as it is.',
    ].join('\n'),
  };
}

/**
 * The security notice to an organization's owners when one of its keys was reported leaked (SPEC
 * §13), or to the global admins when a system key was. It names the key (id, name, hint), never its
 * secret, and where the report said it was found.
 */
export function leakedKeyMail(input: {
  to: string;
  /** The organization's name; null for a system key (sent to the global admins). */
  organizationName: string | null;
  key: { id: string; name: string; hint: string };
  action: 'revoke' | 'quarantine';
  url: string | null;
  source: string | null;
  publicUrl: string;
}): MailMessage {
  const { key } = input;
  const system = input.organizationName === null;
  const what =
    input.action === 'revoke'
      ? 'Paygate has revoked it: it no longer works anywhere. Create a new key for the integration that used it.'
      : `Paygate has quarantined it: it can still read (routes needing a :read scope) but can change nothing${system ? '' : ' and move no money'}. Rotate it (POST /v1/${system ? 'system/' : ''}api-keys/{id}/rotate) to return it to normal with a new secret (the leaked one ends at once), or revoke it.`;
  return {
    to: input.to,
    subject: system ? 'Security notice: a Paygate system API key was reported leaked' : `Security notice: a Paygate API key of ${input.organizationName} was reported leaked`,
    text: [
      ...(system
        ? [`A token of the system API key "${key.name}" (${key.id}, ending in ${key.hint}) was reported as exposed in public.`]
        : [`A token of the API key "${key.name}" (${key.id}, ending in ${key.hint}) of the organization`, `"${input.organizationName}" was reported as exposed in public.`]),
      input.url ? `Reported location: ${input.url}` : null,
      input.source ? `Reported by: ${input.source}` : null,
      '',
      what,
      '',
      'Find out how the token became public (a commit, a log, a paste), remove it there, and check the',
      system
        ? `key's audit trail (GET /v1/system/audit-events?targetId=${key.id}) and recent activity.`
        : "key's audit trail (GET /v1/audit-events?action=api_key.leaked) and recent activity.",
      '',
      `Paygate: ${input.publicUrl}/admin`,
    ]
      .filter((line): line is string => line !== null)
      .join('\n'),
  };
}

/**
 * Key hygiene (SPEC §14): an API key expires within the system setting apiKeyExpiryWarningDays.
 * Sent once per key and expiry (src/keys/expiry-warnings.ts); names the key, never its secret.
 */
export function keyExpiringMail(input: {
  to: string;
  key: { id: string; name: string; hint: string; expiresAt: Date };
  /** The organization's name; null for a system key (sent to the global admins). */
  organizationName: string | null;
  publicUrl: string;
  now: Date;
}): MailMessage {
  const { key } = input;
  const days = Math.max(0, Math.ceil((key.expiresAt.getTime() - input.now.getTime()) / 86_400_000));
  const owner = input.organizationName === null ? 'system API key' : `API key of ${input.organizationName}`;
  return {
    to: input.to,
    subject: `A Paygate ${owner} expires in ${days === 1 ? '1 day' : `${days} days`}`,
    text: [
      `The ${owner} "${key.name}" (${key.id}, ending in ${key.hint}) expires at`,
      `${key.expiresAt.toISOString()}. From then on, every request made with it is refused (api_key_expired).`,
      '',
      'If an integration still needs it, create a new key for that integration and switch it over before',
      'then (an expired key stays expired: its expiry cannot be moved once it has passed). While the key',
      'is still active, its expiresAt can be changed (PATCH /v1/api-keys/{id}); you are then warned again',
      'when the new date comes near.',
      '',
      `Paygate: ${input.publicUrl}/admin`,
    ].join('\n'),
  };
}
