/**
 * The fields of an API key, shared by the Create and Edit dialogs: name, description, expiry,
 * allowed IPs, rate limit, presets and the scope picker; reading them back into API values, and
 * what an edit changed.
 *
 * Scopes and presets the signed-in person may not grant (SPEC §3: a session grants the scopes of
 * its role in the organization; a global admin grants all) are shown disabled with the reason, as
 * the server would refuse them anyway. The server stays the judge.
 */
import { useId, type ReactNode } from 'react';
import { ApiError, type ApiKey, type Tier } from '../api';
import type { FieldLabels } from './Feedback';
import { isoToLocalInput, localInputToIso } from '../format';
import { ACTIONS, PRESETS, RESOURCES, roleScopes, grants } from '../scopes';
import { useSession } from '../session';

export interface KeyFormState {
  name: string;
  description: string;
  /** datetime-local value, local time; empty: never. */
  expiresAt: string;
  /** One address or range per line (commas allowed). */
  allowedIps: string;
  rateRequests: string;
  rateWindow: string;
  scopes: Set<string>;
}

export const EMPTY_KEY_FORM: KeyFormState = { name: '', description: '', expiresAt: '', allowedIps: '', rateRequests: '', rateWindow: '', scopes: new Set() };

export function keyFormOf(key: ApiKey): KeyFormState {
  return {
    name: key.name,
    description: key.description ?? '',
    expiresAt: isoToLocalInput(key.expiresAt),
    allowedIps: (key.allowedIps ?? []).join('\n'),
    rateRequests: key.rateLimit ? String(key.rateLimit.requests) : '',
    rateWindow: key.rateLimit ? String(key.rateLimit.windowSeconds) : '',
    scopes: new Set(key.scopes),
  };
}

/** The API's field names in the words of this form (for ErrorAlert). */
export const KEY_FIELD_LABELS: FieldLabels = {
  name: 'Name',
  description: 'Description',
  scopes: 'Scopes',
  expiresAt: 'Expires at',
  allowedIps: 'Allowed IPs',
  rateLimit: 'Rate limit',
  'rateLimit/requests': 'Rate limit requests',
  'rateLimit/windowSeconds': 'Rate limit window (seconds)',
};

export interface KeyValues {
  name: string;
  description: string | null;
  expiresAt: string | null;
  allowedIps: string[];
  rateLimit: { requests: number; windowSeconds: number } | null;
  scopes: string[];
}

/** The form as API values, or the problems to fix first (as an ApiError, shown like the server's). */
export function readKeyForm(form: KeyFormState): { values: KeyValues; problem: null } | { values: null; problem: ApiError } {
  const problems: { path: string; message: string }[] = [];
  if (!form.name.trim()) problems.push({ path: 'Name', message: 'is required' });
  const expiresAt = localInputToIso(form.expiresAt);
  if (form.expiresAt && !expiresAt) problems.push({ path: 'Expires at', message: 'is not a valid date and time' });
  let rateLimit: KeyValues['rateLimit'] = null;
  if (form.rateRequests.trim() || form.rateWindow.trim()) {
    const requests = Number(form.rateRequests);
    const windowSeconds = Number(form.rateWindow);
    if (!Number.isInteger(requests) || requests < 1 || !Number.isInteger(windowSeconds) || windowSeconds < 1) {
      problems.push({ path: 'Rate limit', message: 'needs both a number of requests and a window in seconds (whole numbers, at least 1)' });
    } else rateLimit = { requests, windowSeconds };
  }
  if (problems.length > 0) return { values: null, problem: new ApiError(0, { title: 'Check the form', detail: 'Some fields need attention.', errors: problems }) };
  const allowedIps = form.allowedIps
    .split(/[\n,]/)
    .map((s) => s.trim())
    .filter(Boolean);
  return {
    values: { name: form.name.trim(), description: form.description.trim() || null, expiresAt, allowedIps, rateLimit, scopes: [...form.scopes].sort() },
    problem: null,
  };
}

/** The PATCH body: only what differs from the key as it is (an unchanged expiry of an expired key must not be sent). */
export function keyChanges(key: ApiKey, form: KeyFormState, values: KeyValues): Record<string, unknown> {
  const changes: Record<string, unknown> = {};
  if (values.name !== key.name) changes.name = values.name;
  if (values.description !== (key.description ?? null)) changes.description = values.description;
  if (values.scopes.join(' ') !== [...key.scopes].sort().join(' ')) changes.scopes = values.scopes;
  // Compared as the inputs show them (minutes, local time), so an untouched field is never sent.
  if (form.expiresAt !== isoToLocalInput(key.expiresAt)) changes.expiresAt = values.expiresAt;
  if (values.allowedIps.join('\n') !== (key.allowedIps ?? []).join('\n')) changes.allowedIps = values.allowedIps.length > 0 ? values.allowedIps : null;
  const before = key.rateLimit ? `${key.rateLimit.requests}/${key.rateLimit.windowSeconds}` : '';
  const after = values.rateLimit ? `${values.rateLimit.requests}/${values.rateLimit.windowSeconds}` : '';
  if (before !== after) changes.rateLimit = values.rateLimit;
  return changes;
}

/** What the signed-in person may grant on this page's keys, and why not the rest. */
export interface Grants {
  can: (scope: string) => boolean;
  /** Why some scopes are disabled; null when everything may be granted. */
  why: string | null;
}

export function useGrants(tier: Tier): Grants {
  const { permissions, selectedOrganization } = useSession();
  // System keys are managed by global admins, who grant every scope; so does a global admin in an organization.
  if (tier === 'system' || permissions.isGlobalAdmin) return { can: () => true, why: null };
  const role = permissions.role;
  if (role === 'owner' || role === 'admin') return { can: () => true, why: null };
  const held = role ? roleScopes(role) : [];
  // Named once: `api_key:read` says nothing more after `api_key:*`.
  const named = held.filter((s) => s.endsWith(':*') || !held.includes(`${s.split(':')[0]}:*`));
  const where = selectedOrganization?.name ? ` in ${selectedOrganization.name}` : '';
  return {
    can: (scope) => grants(held, scope),
    why: role
      ? `As ${role}${where} you can grant only the scopes your role holds: ${named.join(', ')}. An owner or admin can grant the others.`
      : `You hold no role${where}, so you can grant no scopes.`,
  };
}

/** The scopes of `scopes` that `grants` does not allow. */
export function ungrantable(g: Grants, scopes: Iterable<string>): string[] {
  return [...scopes].filter((s) => !g.can(s));
}

interface KeyFieldsProps {
  tier: Tier;
  form: KeyFormState;
  onChange: (next: KeyFormState) => void;
  grants: Grants;
  /** An expired key stays expired (SPEC §4): its expiry is shown, not editable. */
  expiryLocked?: boolean;
}

export function KeyFields({ tier, form, onChange, grants: g, expiryLocked }: KeyFieldsProps) {
  const id = useId();
  const set = <K extends keyof KeyFormState>(field: K, value: KeyFormState[K]) => onChange({ ...form, [field]: value });
  return (
    <>
      <div className="form-grid">
        <div className="field">
          <label htmlFor={`${id}-name`}>Name</label>
          <input id={`${id}-name`} data-autofocus value={form.name} maxLength={100} required onChange={(e) => set('name', e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-expires`}>Expires at</label>
          <input
            id={`${id}-expires`}
            type="datetime-local"
            value={form.expiresAt}
            disabled={expiryLocked}
            onChange={(e) => set('expiresAt', e.target.value)}
            aria-describedby={`${id}-expires-hint`}
          />
          <p id={`${id}-expires-hint`} className="field-hint">
            {expiryLocked ? 'This key has expired, and an expired key stays expired.' : 'Your local time. Empty: never (unless the system caps key lifetime).'}
          </p>
        </div>
        <div className="field field-span">
          <label htmlFor={`${id}-description`}>Description</label>
          <textarea id={`${id}-description`} rows={2} maxLength={500} value={form.description} onChange={(e) => set('description', e.target.value)} />
        </div>
        <div className="field">
          <label htmlFor={`${id}-ips`}>Allowed IPs</label>
          <textarea
            id={`${id}-ips`}
            rows={3}
            value={form.allowedIps}
            onChange={(e) => set('allowedIps', e.target.value)}
            aria-describedby={`${id}-ips-hint`}
            spellCheck={false}
          />
          <p id={`${id}-ips-hint`} className="field-hint">
            One address or CIDR range per line, e.g. 203.0.113.0/24. Empty: any address.
          </p>
        </div>
        <div className="field">
          <fieldset className="inline-fieldset">
            <legend>Rate limit</legend>
            <div className="field">
              <label htmlFor={`${id}-rate-requests`}>Rate limit requests</label>
              <input id={`${id}-rate-requests`} type="number" min={1} inputMode="numeric" value={form.rateRequests} onChange={(e) => set('rateRequests', e.target.value)} />
            </div>
            <div className="field">
              <label htmlFor={`${id}-rate-window`}>Rate limit window (seconds)</label>
              <input id={`${id}-rate-window`} type="number" min={1} inputMode="numeric" value={form.rateWindow} onChange={(e) => set('rateWindow', e.target.value)} />
            </div>
            <p className="field-hint">Empty: no per-key limit.</p>
          </fieldset>
        </div>
      </div>

      {tier === 'organization' && <Presets grants={g} onPick={(scopes) => set('scopes', new Set(scopes))} />}
      <ScopePicker tier={tier} selected={form.scopes} onChange={(scopes) => set('scopes', scopes)} grants={g} />
    </>
  );
}

function Presets({ grants: g, onPick }: { grants: Grants; onPick: (scopes: string[]) => void }) {
  const id = useId();
  return (
    <div role="group" aria-labelledby={`${id}-presets`} className="presets">
      <h3 id={`${id}-presets`}>Presets</h3>
      <ul className="preset-buttons">
        {PRESETS.map((preset, index) => {
          const missing = ungrantable(g, preset.scopes);
          const reasonId = `${id}-preset-${index}-why`;
          return (
            <li key={preset.name} className="preset">
              <button
                type="button"
                className="button button-small button-secondary"
                onClick={() => onPick(preset.scopes)}
                title={preset.scopes.join(', ')}
                disabled={missing.length > 0}
                aria-describedby={missing.length > 0 ? reasonId : undefined}
              >
                {preset.name}
              </button>
              {missing.length > 0 && (
                <span id={reasonId} className="preset-why">
                  Needs {missing.join(', ')}, which you cannot grant
                </span>
              )}
            </li>
          );
        })}
      </ul>
    </div>
  );
}

function ScopePicker({ tier, selected, onChange, grants: g }: { tier: Tier; selected: Set<string>; onChange: (next: Set<string>) => void; grants: Grants }) {
  const id = useId();
  const whyId = `${id}-why`;
  const toggle = (scope: string, on: boolean) => {
    const next = new Set(selected);
    if (on) next.add(scope);
    else next.delete(scope);
    onChange(next);
  };
  let note: ReactNode = null;
  if (g.why) {
    note = (
      <p id={whyId} className="alert alert-info scope-why">
        {g.why}
      </p>
    );
  }
  return (
    <section className="scope-picker" aria-labelledby={`${id}-title`}>
      <div className="scope-picker-header">
        <h3 id={`${id}-title`}>Scopes</h3>
        <p className="field-hint">
          {selected.size === 0 ? 'No scopes selected.' : `${selected.size} selected.`} <code>resource:*</code> grants every action of the resource.
        </p>
        {selected.size > 0 && (
          <button type="button" className="button button-small button-ghost" onClick={() => onChange(new Set())}>
            Clear scopes
          </button>
        )}
      </div>
      {note}
      <div className="scope-grid">
        {RESOURCES[tier].map((resource) => (
          <fieldset key={resource} className="scope-group">
            <legend>{resource}</legend>
            {ACTIONS.map((action) => {
              const scope = `${resource}:${action}`;
              const inputId = `${id}-${resource}-${action === '*' ? 'all' : action}`;
              const allowed = g.can(scope);
              return (
                <div key={action} className={allowed ? 'check' : 'check check-disabled'}>
                  <input
                    id={inputId}
                    type="checkbox"
                    checked={selected.has(scope)}
                    disabled={!allowed}
                    aria-describedby={allowed ? undefined : whyId}
                    onChange={(e) => toggle(scope, e.target.checked)}
                  />
                  <label htmlFor={inputId}>{scope}</label>
                </div>
              );
            })}
          </fieldset>
        ))}
      </div>
    </section>
  );
}
