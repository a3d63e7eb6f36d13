/**
 * HTTP for leaked-key reports (SPEC §13): `POST /v1/leaked-keys`, no credential, two formats:
 * - plain `{ tokens: [string], source?, url? }` -> `202 { received }`, whatever the tokens are;
 * - GitHub's secret-scanning partner format, a JSON array of `{ token, type, url, source }` signed
 *   over the raw body (headers Github-Public-Key-Identifier / -Signature) -> `200` with a label per
 *   token. An unsigned or badly signed array is `401 invalid_signature`.
 * Both are limited to REPORTS_PER_HOUR per source address; verified partner reports are not.
 *
 * The signature covers the raw bytes, so this route parses its own JSON: its plugin context
 * replaces the JSON parser with one that keeps the raw body (the rest of the API is untouched).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { Services } from '../services.js';
import { AppError } from '../errors.js';
import { route } from '../http/routes.js';
import { addTag } from '../http/openapi.js';
import { KEY_ID_HEADER, SIGNATURE_HEADER } from './signature.js';
import { MAX_TOKENS, MAX_TOKEN_LENGTH, REPORTS_PER_HOUR, tokenHash, type ReportedToken } from './service.js';

const TAG = 'Leaked keys';
addTag(TAG, 'Reporting API key tokens found in public (by anyone, or by a secret-scanning partner such as GitHub): matching keys are revoked or quarantined at once.');

const Token = Type.String({ maxLength: MAX_TOKEN_LENGTH, description: 'A token as found, e.g. `sk_<id>.<secret>`' });

const PlainReport = Type.Object(
  {
    tokens: Type.Array(Token, { minItems: 1, maxItems: MAX_TOKENS, description: `1..${MAX_TOKENS} tokens` }),
    source: Type.Optional(Type.String({ maxLength: 200, description: 'Who or what found them (kept in the audit event)' })),
    url: Type.Optional(Type.String({ maxLength: 2048, description: 'Where they were found (kept in the audit event)' })),
  },
  { additionalProperties: false, title: 'Plain report', examples: [{ tokens: ['sk_...'], source: 'security@example.com', url: 'https://example.com/paste/123' }] },
);

const PartnerItem = Type.Object(
  {
    token: Token,
    type: Type.String({ maxLength: 200, description: "The partner's name for the token type" }),
    url: Type.Optional(Type.String({ maxLength: 2048, description: 'Where the token was found' })),
    source: Type.Optional(Type.String({ maxLength: 200, description: 'What kind of place it was found in (content, commit, ...)' })),
  },
  // A partner may add fields; they are ignored, never refused.
  { additionalProperties: true },
);
const PartnerReport = Type.Array(PartnerItem, {
  minItems: 1,
  maxItems: MAX_TOKENS,
  title: 'Secret-scanning partner report (GitHub)',
  description: 'Signed: `Github-Public-Key-Identifier` names a key of PAYGATE_SECRET_SCANNING_KEYS; `Github-Public-Key-Signature` is the base64 DER ECDSA P-256 / SHA-256 signature of the raw body.',
});

const Received = Type.Object(
  { received: Type.Integer({ description: 'How many tokens the report held; says nothing about whether any is real' }) },
  { additionalProperties: false },
);
const Labels = Type.Array(
  Type.Object(
    {
      token_hash: Type.String({ description: 'Hex SHA-256 of the token' }),
      token_type: Type.String({ description: 'The type the partner sent' }),
      label: Type.String({ enum: ['true_positive', 'false_positive'], description: 'true_positive: a real token of a Paygate key (now contained, if it was live)' }),
    },
    { additionalProperties: false },
  ),
  { description: 'One label per reported token, in order (verified partner reports only)' },
);

const rawBodies = new WeakMap<FastifyRequest, Buffer>();
const verified = new WeakSet<FastifyRequest>();

export function registerLeakRoutes(app: FastifyInstance, services: Services): void {
  // A plugin context of its own: its JSON parser and hooks apply to this route alone.
  void app.register(async (scope) => {
    const defaultJson = scope.getDefaultJsonParser('error', 'error');
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      const raw = body as Buffer;
      rawBodies.set(request, raw);
      if (raw.length === 0 || raw.toString('utf8').trim() === '') return done(null, undefined);
      return defaultJson(request, raw.toString('utf8'), done);
    });

    const limit = async (request: FastifyRequest) => {
      const wait = await services.leaks.attempt(request.ip);
      if (wait > 0) throw new AppError('rate_limited', `Too many leak reports from this address; retry in ${wait} s`, { headers: { 'Retry-After': String(wait) } });
    };
    // Counted before the body is even read, unless the request says it is signed: a verified partner
    // report is not limited (its source is the partner), so that is decided once the body is there.
    scope.addHook('onRequest', async (request) => {
      if (request.headers[SIGNATURE_HEADER] === undefined) await limit(request);
    });
    scope.addHook('preValidation', async (request) => {
      const array = Array.isArray(request.body);
      const raw = rawBodies.get(request);
      const ok = array && raw !== undefined && services.leaks.partnerKeys.verify(raw, request.headers[KEY_ID_HEADER], request.headers[SIGNATURE_HEADER]);
      if (ok) {
        verified.add(request);
        return;
      }
      if (request.headers[SIGNATURE_HEADER] !== undefined) await limit(request);
      if (array) throw new AppError('invalid_signature', 'A report in the secret-scanning partner format must be signed by a configured key (Github-Public-Key-Identifier, Github-Public-Key-Signature)');
    });

    route(scope, {
      method: 'POST', path: '/leaked-keys', operationId: 'reportLeakedKeys', auth: { kind: 'public' }, tags: [TAG],
      summary: 'Report leaked API key tokens',
      description: [
        'Anyone may report tokens found in public. The plain format always answers `202 { received }` and never tells whether a token is real.',
        'Every token whose checksum, id and secret (current, or previous within its grace) match is contained at once on every node, per the system setting `leakedKeyAction`: revoked, or quarantined (`:read` routes only until rotated).',
        "GitHub's secret-scanning partner format (a signed JSON array) answers `200` with a label per token.",
        `At most ${REPORTS_PER_HOUR} reports an hour per source address (verified partner reports excepted).`,
      ].join('\n\n'),
      schema: { body: Type.Union([PlainReport, PartnerReport]), response: { 200: Labels, 202: Received } },
      errors: ['invalid_signature', 'rate_limited'],
      handler: async (request, reply) => {
        const startedAt = performance.now();
        const meta = { ip: request.ip, requestId: request.id };
        const body = request.body;
        if (Array.isArray(body)) {
          // Only a verified report reaches here as an array (preValidation).
          if (!verified.has(request)) throw new AppError('invalid_signature');
          const tokens: ReportedToken[] = body.map((item) => ({ token: item.token, url: item.url ?? null, source: item.source ?? 'github' }));
          const keyId = String(request.headers[KEY_ID_HEADER]).slice(0, 200);
          const outcome = await services.leaks.report(tokens, { ...meta, format: 'github', signedBy: keyId }, startedAt);
          return reply.code(200).send(
            body.map((item, i) => ({ token_hash: tokenHash(item.token), token_type: item.type, label: outcome.matched[i] ? 'true_positive' : 'false_positive' })),
          );
        }
        const tokens: ReportedToken[] = body.tokens.map((token) => ({ token, url: body.url ?? null, source: body.source ?? null }));
        await services.leaks.report(tokens, { ...meta, format: 'plain' }, startedAt);
        return reply.code(202).send({ received: tokens.length });
      },
    });
  });
}
