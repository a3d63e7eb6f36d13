/**
 * A secret shown once (a new API key, a webhook signing secret): read-only, wrapped, selected on
 * focus, with a Copy button beside it. The whole token, never scrolled: its start tells what it
 * is, its end matches the hint.
 */
import { useRef } from 'react';
import { CopyButton } from './Copy';

export function SecretField({ id, label, secret, copyLabel }: { id: string; label: string; secret: string; copyLabel?: string }) {
  const field = useRef<HTMLTextAreaElement>(null);
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <div className="secret-row">
        <textarea
          id={id}
          ref={field}
          readOnly
          value={secret}
          className="mono secret-value"
          rows={2}
          data-autofocus
          spellCheck={false}
          autoComplete="off"
          onFocus={(e) => e.currentTarget.select()}
        />
        <CopyButton text={secret} select={field} label={copyLabel} />
      </div>
    </div>
  );
}
