/** The notice an organization's owners get when Paygate disables one of its webhook endpoints. */
import type { MailMessage } from '../mail/mailer.js';
import type { EndpointView } from './service.js';
import { auditedUrl } from './service.js';

export function endpointDisabledMail(input: { to: string; endpoint: EndpointView; publicUrl: string }): MailMessage {
  const { endpoint } = input;
  return {
    to: input.to,
    subject: 'Paygate disabled a webhook endpoint',
    text: [
      `Every delivery to the webhook endpoint ${endpoint.id} has failed for 3 days, so Paygate has`,
      'disabled it and sends it no more events.',
      '',
      // Origin and path only: a token the receiver keeps in its query string stays out of mail.
      `Endpoint: ${auditedUrl(endpoint.url)}`,
      endpoint.description ? `Description: ${endpoint.description}` : null,
      '',
      'Once the receiver answers again, enable the endpoint (PATCH /v1/webhook-endpoints/{id} with',
      '{"status": "enabled"}), then retry the deliveries it missed',
      '(POST /v1/webhook-endpoints/{id}/deliveries/{deliveryId}/retry); failed ones are listed with',
      'GET /v1/webhook-endpoints/{id}/deliveries?status=failed.',
      '',
      `Paygate: ${input.publicUrl}/admin`,
    ]
      .filter((line): line is string => line !== null)
      .join('\n'),
  };
}
