/**
 * Copying to the clipboard: a Copy button with a polite status line, and the invitation link block
 * (the link Paygate hands over when it sends no mail) built on it.
 */
import { useState, type RefObject } from 'react';

/**
 * Copies `text`; when the Clipboard API is unavailable (permissions, an insecure context) selects the
 * text in `select` so the keyboard can copy it. Resolves to the message to show.
 */
export async function copyText(text: string, select?: RefObject<HTMLInputElement | HTMLTextAreaElement | null>): Promise<string> {
  try {
    await navigator.clipboard.writeText(text);
    return 'Copied to the clipboard.';
  } catch {
    const field = select?.current;
    if (field) {
      field.focus();
      field.select();
      const ok = document.execCommand?.('copy') ?? false;
      if (ok) return 'Copied to the clipboard.';
    }
    return 'Select the text and copy it with your keyboard.';
  }
}

interface CopyButtonProps {
  text: string;
  /** Accessible name when "Copy" alone is ambiguous ("Copy invitation link for ..."). */
  label?: string;
  select?: RefObject<HTMLInputElement | HTMLTextAreaElement | null>;
  className?: string;
}

/** A Copy button followed by its status ("Copied to the clipboard."), announced politely. */
export function CopyButton({ text, label, select, className = 'button button-secondary' }: CopyButtonProps) {
  const [message, setMessage] = useState<string | null>(null);
  return (
    <>
      <button type="button" className={className} aria-label={label} onClick={() => void copyText(text, select).then(setMessage)}>
        Copy
      </button>
      <span role="status" className="copy-status">
        {message ?? ''}
      </span>
    </>
  );
}

/** The link of an invitation Paygate did not mail, readable in full, with a Copy button. */
export function InvitationLink({ url, title = 'Invitation link', email }: { url: string; title?: string; email?: string }) {
  return (
    <div className="invitation">
      <p className="invitation-label">
        {title}
      </p>
      <div className="copy-row">
        <code className="invitation-url">
          {url}
        </code>
        <CopyButton text={url} label={email ? `Copy invitation link for ${email}` : 'Copy invitation link'} />
      </div>
      <p className="field-hint">Paygate sends no mail here: hand this link to the person yourself. It works once, for 7 days.</p>
    </div>
  );
}
