/**
 * Where invitation links lead (/admin/accept-invitation?token=...): the invitee sets a password.
 * The token leaves the address bar (and history) at once; it is sent only in the POST body.
 */
import { useId, useState, type FormEvent } from 'react';
import { request } from '../api';
import { ErrorAlert } from '../components/Feedback';
import { usePageTitle, useAction } from '../hooks';
import { Link } from '../router';

function takeToken(): string {
  const params = new URLSearchParams(window.location.search);
  const token = params.get('token') ?? '';
  if (token) window.history.replaceState(null, '', window.location.pathname);
  return token;
}

let initialToken: string | null = null;

export function AcceptInvitationPage() {
  usePageTitle('Accept invitation');
  const id = useId();
  const [token] = useState(() => (initialToken ??= takeToken()));
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const { busy, error, setError, run } = useAction();
  const [done, setDone] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    if (password !== confirm) {
      setError(new Error('The two passwords differ.'));
      return;
    }
    await run(async () => {
      await request('POST', '/v1/auth/invitations/accept', { body: { token, password }, quiet401: true });
      setDone(true);
    });
  };

  return (
    <div className="signin-page">
      <main className="signin-card">
        <h1>Accept invitation</h1>
        {done ? (
          <>
            <p role="status">Your password is set.</p>
            <p>
              <Link to="/keys">Sign in to Paygate</Link>
            </p>
          </>
        ) : !token ? (
          <div role="alert" className="alert alert-error">
            This invitation link has no token. Open the link from your invitation again.
          </div>
        ) : (
          <form onSubmit={submit} className="form-stack" noValidate>
            <p>Choose a password (at least 10 characters) to finish setting up your account.</p>
            <ErrorAlert error={error} />
            <div className="field">
              <label htmlFor={`${id}-password`}>New password</label>
              <input id={`${id}-password`} type="password" autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} />
            </div>
            <div className="field">
              <label htmlFor={`${id}-confirm`}>Repeat the password</label>
              <input id={`${id}-confirm`} type="password" autoComplete="new-password" value={confirm} onChange={(e) => setConfirm(e.target.value)} />
            </div>
            <button type="submit" className="button button-primary button-block" disabled={busy}>
              Set password
            </button>
          </form>
        )}
      </main>
    </div>
  );
}
