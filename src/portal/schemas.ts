/** The portal magic link of the API description (SPEC §5): request body and the create response. */
import { Type, type Static } from 'typebox';
import { component } from '../http/openapi.js';
import { ObjectId, exact } from '../payments/schemas.js';
import type { MagicLinkView } from './service.js';

export const PortalLinkRef = component(
  'PortalLink',
  Type.Object(
    {
      id: ObjectId('pln'),
      object: Type.Literal('portal_link'),
      clientId: ObjectId('cli'),
      url: Type.String({
        format: 'uri',
        description: 'The single-use sign-in link `/portal/login?token=...`, shown in this response only: it signs the client in, so hand it to them alone',
      }),
      expiresAt: Type.String({ format: 'date-time' }),
      ttlMinutes: Type.Integer({ minimum: 1, description: 'The effective lifetime: min(requested, the system setting portalMagicLinkTtlMinutes)', examples: [15] }),
    },
    { additionalProperties: false, description: 'A customer portal magic link for one client' },
  ),
);

export const CreateMagicLinkBody = Type.Object(
  {
    clientId: Type.String({ minLength: 1, maxLength: 64 }),
    ttlMinutes: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Requested lifetime; the effective value is min(requested, system portalMagicLinkTtlMinutes)' }),
    ),
  },
  { additionalProperties: false, examples: [{ clientId: 'cli_4Fh7Qm2ZkX9bP1sLr8TnWv', ttlMinutes: 30 }] },
);

exact<MagicLinkView, Static<typeof PortalLinkRef>>(true);
