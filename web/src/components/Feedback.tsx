/** Error, loading and empty states, shown the same way on every page. */
import { useEffect, useRef, type ReactNode } from 'react';
import { ApiError } from '../api';

/** An API error in words: its detail (or title), then each field error with its path. */
export function ErrorAlert({ error }: { error: unknown }) {
  const ref = useRef<HTMLDivElement>(null);
  // A long form (the key dialog) may have scrolled the message out of sight: bring it into view.
  useEffect(() => {
    if (error) ref.current?.scrollIntoView?.({ block: 'nearest' });
  }, [error]);
  if (!error) return null;
  const api = error instanceof ApiError ? error : null;
  // A validation detail is the field errors joined; the list below says it better, so lead with the title.
  const derived = api !== null && api.errors.length > 0 && api.detail === api.errors.map((e) => `${e.path}: ${e.message}`).join('; ');
  const message = api ? (derived ? api.title : (api.detail ?? api.title)) : error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" className="alert alert-error" ref={ref}>
      <p className="alert-title">{message}</p>
      {api && api.errors.length > 0 && (
        <ul className="alert-list">
          {api.errors.map((e, i) => (
            <li key={i}>
              {e.path ? (
                <>
                  <code>{e.path}</code>:{' '}
                </>
              ) : null}
              {e.message}
            </li>
          ))}
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
        : status === 'expired' || status === 'denied'
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
