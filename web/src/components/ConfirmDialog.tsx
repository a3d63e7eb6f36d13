/**
 * A confirmation before a change that takes effect at once (removing a member, changing a role,
 * cancelling an invitation, deleting an organization). The dialog names what will happen; the
 * action runs only on the confirming button, and an API refusal (the last owner, say) is shown in
 * the dialog, in words, leaving it open. `typeToConfirm` asks for a name to be typed first.
 */
import { useId, useState, type FormEvent, type ReactNode } from 'react';
import { Dialog } from './Dialog';
import { ErrorAlert } from './Feedback';
import { useAction } from '../hooks';

interface ConfirmDialogProps {
  title: string;
  children: ReactNode;
  confirmLabel: string;
  /** Red confirming button: for what cannot be undone. */
  danger?: boolean;
  /** The exact text to type before the confirming button enables (an organization's name). */
  typeToConfirm?: { text: string; label: string };
  onConfirm: () => Promise<void>;
  onClose: () => void;
  returnFocus?: HTMLElement | null;
}

export function ConfirmDialog({ title, children, confirmLabel, danger, typeToConfirm, onConfirm, onClose, returnFocus }: ConfirmDialogProps) {
  const id = useId();
  const [typed, setTyped] = useState('');
  const { busy, error, run } = useAction();
  const ready = !typeToConfirm || typed === typeToConfirm.text;

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!ready || busy) return;
    await run(onConfirm);
  };

  return (
    <Dialog title={title} onClose={onClose} describedBy={`${id}-text`} returnFocus={returnFocus}>
      <form onSubmit={submit}>
        <ErrorAlert error={error} />
        <div id={`${id}-text`}>{children}</div>
        {typeToConfirm && (
          <div className="field">
            <label htmlFor={`${id}-confirm`}>{typeToConfirm.label}</label>
            <input
              id={`${id}-confirm`}
              value={typed}
              onChange={(e) => setTyped(e.target.value)}
              autoComplete="off"
              spellCheck={false}
              data-autofocus
            />
          </div>
        )}
        <div className="dialog-actions">
          <button type="button" className="button button-secondary" onClick={onClose} data-autofocus={typeToConfirm ? undefined : true}>
            Cancel
          </button>
          <button type="submit" className={danger ? 'button button-danger' : 'button button-primary'} disabled={!ready || busy}>
            {confirmLabel}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
