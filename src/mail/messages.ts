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
