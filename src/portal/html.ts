/**
 * Tiny HTML templating for the portal pages: every interpolated value is escaped unless it is
 * already SafeHtml (made by `html` itself), so forgetting to escape is impossible rather than a review item.
 * Pure: no Fastify, no database.
 */

const SAFE = Symbol('safe-html');

export interface SafeHtml {
  readonly [SAFE]: true;
  readonly value: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for element content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function isSafe(value: unknown): value is SafeHtml {
  return typeof value === 'object' && value !== null && (value as Partial<SafeHtml>)[SAFE] === true;
}

function render(value: unknown): string {
  if (value === null || value === undefined || value === false) return '';
  if (isSafe(value)) return value.value;
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}

/** Tagged template: html`<p>${name}</p>` escapes `name`; nested html`` fragments and arrays of them pass through. */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return { [SAFE]: true, value: out };
}

/**
 * Marks a string as HTML without escaping. Only for constants written in this folder (the style
 * sheet, the auto-submit script): the content of <style> and <script> is raw text, where entities
 * are not decoded, so escaping would break it. Never pass request or database values.
 */
export function trustedConstant(value: string): SafeHtml {
  return { [SAFE]: true, value };
}
