/**
 * A modal dialog on the native <dialog> element: showModal() makes the rest of the page inert and
 * keeps Tab inside. On open, focus moves to the element marked data-autofocus (else the first field
 * or button); Escape closes; on close, focus returns to the element that had it before, or to the
 * page heading when that element is gone (a revoked key's row loses its Revoke button).
 */
import { useId, useLayoutEffect, useRef, type ReactNode } from 'react';

interface DialogProps {
  title: string;
  onClose: () => void;
  children: ReactNode;
  /** Wider layout for the key form. */
  wide?: boolean;
  /** Element that describes the dialog (id), e.g. a warning paragraph. */
  describedBy?: string;
  /** Where focus goes on close; default: the element focused when the dialog opened. */
  returnFocus?: HTMLElement | null;
}

const FOCUSABLE = 'input:not([disabled]), select:not([disabled]), textarea:not([disabled]), button:not([disabled]), a[href], [tabindex]:not([tabindex="-1"])';

export function Dialog({ title, onClose, children, wide, describedBy, returnFocus }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  const onCloseRef = useRef(onClose);
  onCloseRef.current = onClose;
  // False once React is removing the dialog: its own close() must not report a close again.
  const open = useRef(false);

  useLayoutEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const active = document.activeElement instanceof HTMLElement && document.activeElement !== document.body ? document.activeElement : null;
    const opener = returnFocus ?? active;
    open.current = true;
    if (!dialog.open) dialog.showModal();
    const target = dialog.querySelector<HTMLElement>('[data-autofocus]:not(:disabled)') ?? dialog.querySelector<HTMLElement>(FOCUSABLE);
    target?.focus();
    return () => {
      open.current = false;
      if (dialog.open) dialog.close();
      // After React has removed the dialog: restore focus to the opener, or the page heading.
      queueMicrotask(() => {
        // A dialog that replaces this one (create -> secret) keeps the focus.
        if (document.querySelector('dialog[open]')) return;
        if (opener && opener.isConnected && opener !== document.body) opener.focus();
        else document.querySelector<HTMLElement>('main h1')?.focus();
      });
    };
  }, []);

  return (
    <dialog
      ref={ref}
      className={wide ? 'dialog dialog-wide' : 'dialog'}
      aria-modal="true"
      aria-labelledby={titleId}
      aria-describedby={describedBy}
      onCancel={(event) => {
        // Escape: let React own the closing, so state and DOM agree.
        event.preventDefault();
        if (open.current) onCloseRef.current();
      }}
      onClose={() => {
        // The browser may close a modal on Escape without a cancelable cancel event (close-watcher
        // rules). A stale close event (StrictMode's remount in development) finds the dialog open again.
        if (open.current && !ref.current?.open) onCloseRef.current();
      }}
    >
      <div className="dialog-header">
        <h2 id={titleId}>{title}</h2>
      </div>
      <div className="dialog-body">{children}</div>
    </dialog>
  );
}
