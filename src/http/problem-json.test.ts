/** The cached problem text is exactly what the problem's object serialises to. */
import { describe, expect, it } from 'vitest';
import { AppError, validationError } from '../errors.js';
import { problemBody, problemJson, serviceUnavailable } from './error-handler.js';

describe('problemJson', () => {
  const errors = [
    new AppError('invalid_api_key'),
    new AppError('invalid_api_key', 'The Authorization header must be "Bearer <token>"'),
    new AppError('missing_credentials', 'Send an API key as "Authorization: Bearer sk_..." or sign in'),
    new AppError('insufficient_scope', 'This credential lacks the scope client:read', { extra: { requiredScope: 'client:read' } }),
    validationError([{ path: '/name', message: 'is required' }]),
    serviceUnavailable(),
    new AppError('not_found', 'No such "client" \\ with\nnewline'),
  ];

  it.each(errors.map((e) => [e.code, e] as const))('%s: first and cached answers equal JSON.stringify(problemBody)', (_code, error) => {
    for (const requestId of ['req_abc123', 'req_other', 'odd "id" \\ \u2028']) {
      const text = problemJson(error, requestId);
      expect(text).toBe(JSON.stringify(problemBody(error, requestId)));
      expect(JSON.parse(text).requestId).toBe(requestId);
    }
  });

  it('two details of one code are cached apart', () => {
    const a = new AppError('conflict', 'first');
    const b = new AppError('conflict', 'second');
    expect(JSON.parse(problemJson(a, 'r1')).detail).toBe('first');
    expect(JSON.parse(problemJson(b, 'r2')).detail).toBe('second');
    expect(JSON.parse(problemJson(a, 'r3')).detail).toBe('first');
  });
});
