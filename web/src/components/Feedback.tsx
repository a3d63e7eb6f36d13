/** Error, loading and empty states, shown the same way on every page. */
import { useEffect, useRef, type ReactNode } from 'react';
import { ApiError } from '../api';

/**
 * Names for the fields of a form, by the first segment of the JSON pointer the API puts in a field
 * error (`/allowedIps/1` -> "Allowed IPs"), so its errors read in the form's own words.
 */
export type FieldLabels = Record<string, string>;

function fieldName(path: string, labels: FieldLabels | undefined): { text: string; words: boolean } {
  // Errors the panel makes itself already name the field in words.
  if (!path.startsWith('/')) return { text: path, words: true };
  const [first, second] = path.split('/').filter(Boolean);
  const label = first !== undefined ? labels?.[first] : undefined;
  if (!label) return { text: path, words: false };
  if (second === undefined) return { text: label, words: true };
  if (/^\d+$/.test(second)) return { text: `${label}, entry ${Number(second) + 1}`, words: true };
  return { text: labels?.[`${first}/${second}`] ?? `${label} (${second})`, words: true };
}

/** An API error in words: its detail (or title), then each field error with the field it concerns. */
export function ErrorAlert({ error, labels }: { error: unknown; labels?: FieldLabels }) {
  const ref = useRef<HTMLDivElement>(null);
  // A long form (the key dialog) may have scrolled the message out of sight: bring it into view.
  useEffect(() => {
    if (error) ref.current?.scrollIntoView?.({ block: 'nearest' });
  }, [error]);
  if (!error) return null;
  const api = error instanceof ApiError ? error : null;
  // A validation detail is the field errors joined (ours with ": ", the schema's with " "); the list
  // below says it better, so lead with the title.
  const derived =
    api !== null &&
    api.errors.length > 0 &&
    (api.detail === api.errors.map((e) => `${e.path}: ${e.message}`).join('; ') || api.detail === api.errors.map((e) => `${e.path} ${e.message}`).join('; '));
  const message = api ? (derived ? api.title : (api.detail ?? api.title)) : error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" className="alert alert-error" ref={ref}>
      <p className="alert-title">{message}</p>
      {api && api.errors.length > 0 && (
        <ul className="alert-list">
          {api.errors.map((e, i) => {
            const field = e.path && e.path !== '/' ? fieldName(e.path, labels) : null;
            return (
              <li key={i}>
                {field ? <>{field.words ? <strong>{field.text}</strong> : <code>{field.text}</code>}: </> : null}
                {e.message}
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <p className="loading" role="status">
      {label}
    </p>
  );
}

/** A list's first load: "Loading…" until its first answer, then the error, if any (a reload keeps the rows shown). */
export function ListFeedback({ list }: { list: { data: unknown; error: unknown; loading: boolean } }) {
  return (
    <>
      {list.loading && !list.data && <Loading />}
      <ErrorAlert error={list.error} />
    </>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** A polite live region for confirmations ("Settings saved"). Rendered always, filled on success. */
export function StatusMessage({ message }: { message: string | null }) {
  return (
    <p role="status" className={message ? 'status-message' : 'status-message status-empty'}>
      {message ?? ''}
    </p>
  );
}

export function Badge({ status }: { status: string }) {
  const tone =
    status === 'active' || status === 'ok' || status === 'success'
      ? 'good'
      : status === 'revoked' || status === 'deleted' || status === 'failure' || status === 'degraded'
        ? 'bad'
        : status === 'expired' || status === 'denied' || status === 'quarantined'
          ? 'warn'
          : 'neutral';
  return <span className={`badge badge-${tone}`}>{status}</span>;
}

/** "Load more" under a cursor-paginated list, with its own busy state and error. */
export function LoadMore({ hasMore, busy, error, onLoad }: { hasMore: boolean | undefined; busy: boolean; error: unknown; onLoad: () => Promise<void> }) {
  return (
    <>
      {hasMore && (
        <div className="load-more">
          <button type="button" className="button button-secondary" onClick={() => void onLoad()} disabled={busy}>
            {busy ? 'Loading…' : 'Load more'}
          </button>
        </div>
      )}
      <ErrorAlert error={error} />
    </>
  );
}
