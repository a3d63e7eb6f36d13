import { useId, useState, type FormEvent } from 'react';
import { request } from '../api';
import { ErrorAlert } from '../components/Feedback';
import { usePageTitle, useAction } from '../hooks';
import { Link } from '../router';

interface SignInProps {
  notice: string | null;
  onSignedIn: () => Promise<void>;
}

export function SignInPage({ notice, onSignedIn }: SignInProps) {
  usePageTitle('Sign in');
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const emailId = useId();
  const passwordId = useId();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    await run(async () => {
      await request('POST', '/v1/auth/login', { body: { email: email.trim(), password }, quiet401: true });
      await onSignedIn();
    });
  };

  return (
    <div className="signin-page">
      <main className="signin-card">
        <div className="signin-brand" aria-hidden="true">
          <span className="brand-mark">P</span>
        </div>
        <h1>Sign in to Paygate</h1>
        {notice && !error && (
          <div role="alert" className="alert alert-info">
            {notice}
          </div>
        )}
        <ErrorAlert error={error} />
        <form onSubmit={submit} className="form-stack" noValidate>
          <div className="field">
            <label htmlFor={emailId}>Email</label>
            <input
              id={emailId}
              type="email"
              autoComplete="username"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor={passwordId}>Password</label>
            <input
              id={passwordId}
              type="password"
              autoComplete="current-password"
              required
              value={password}
              onChange={(e) => setPassword(e.target.value)}
            />
          </div>
          <button type="submit" className="button button-primary button-block" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        <p className="hint">
          <Link to="/reset-password">Forgot password?</Link>
        </p>
        <p className="hint">First start? The admin email and password were printed once in the server's console.</p>
      </main>
    </div>
  );
}
