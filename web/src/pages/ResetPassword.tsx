/**
 * Password reset (/admin/reset-password). Without a token: ask for a link by address (the answer
 * never says whether an account uses it). With one (the mailed link): choose a new password; the
 * token leaves the address bar at once and is sent only in the POST body. A completed reset ends
 * every session of the account, this browser's included.
 */
import { useId, useState, type FormEvent } from 'react';
import { request } from '../api';
import { ErrorAlert } from '../components/Feedback';
import { usePageTitle, useAction } from '../hooks';

function takeToken(): string {
  const params = new URLSearchParams(window.location.search);
  const token = params.get('token') ?? '';
  if (token) window.history.replaceState(null, '', window.location.pathname);
  return token;
}

let initialToken: string | null = null;

export function ResetPasswordPage() {
  usePageTitle('Reset password');
  const [token] = useState(() => (initialToken ??= takeToken()));
  return (
    <div className="signin-page">
      <main className="signin-card">
        <h1>Reset password</h1>
        {token ? <ChooseNewPassword token={token} /> : <RequestLink />}
      </main>
    </div>
  );
}

function RequestLink() {
  const id = useId();
  const [email, setEmail] = useState('');
  const [sentTo, setSentTo] = useState<string | null>(null);
  const { busy, error, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    await run(async () => {
      await request('POST', '/v1/auth/password-reset', { body: { email: email.trim() }, quiet401: true });
      setSentTo(email.trim());
    });
  };

  if (sentTo) {
    return (
      <>
        <p role="status">
          If an account uses {sentTo}, a link to choose a new password is on its way there. It works once, for 30 minutes.
        </p>
        <p>
          <a href="/admin">Back to sign in</a>
        </p>
      </>
    );
  }
  return (
    <form onSubmit={submit} className="form-stack" noValidate>
      <p>Enter the address you sign in with. Paygate mails it a link to choose a new password.</p>
      <ErrorAlert error={error} />
      <div className="field">
        <label htmlFor={`${id}-email`}>Email</label>
        <input id={`${id}-email`} type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
      </div>
      <button type="submit" className="button button-primary button-block" disabled={busy}>
        Send reset link
      </button>
      <p className="hint">
        <a href="/admin">Back to sign in</a>
      </p>
    </form>
  );
}

function ChooseNewPassword({ token }: { token: string }) {
  const id = useId();
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const [done, setDone] = useState(false);
  const { busy, error, setError, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    if (password !== confirm) {
      setError(new Error('The two passwords differ.'));
      return;
    }
    await run(async () => {
      await request('POST', '/v1/auth/password-reset/confirm', { body: { token, password }, quiet401: true });
      setDone(true);
    });
  };

  if (done) {
    return (
      <>
        <p role="status">Your password is changed, and the account is signed out everywhere.</p>
        <p>
          <a href="/admin">Sign in to Paygate</a>
        </p>
      </>
    );
  }
  return (
    <form onSubmit={submit} className="form-stack" noValidate>
      <p>Choose a new password: at least 10 characters, and not a commonly used one.</p>
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
        Set new password
      </button>
    </form>
  );
}
