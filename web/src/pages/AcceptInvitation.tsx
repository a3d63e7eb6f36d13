/**
 * Where invitation links lead (/admin/accept-invitation?token=...). The token leaves the address bar
 * (and history) at once; it is sent only in POST bodies. The page asks what the invitation is
 * (POST /v1/auth/invitations/inspect), then:
 * - a new person chooses a password (POST /v1/auth/invitations/accept) and is signed in;
 * - someone who already has an account signs in, or is signed in, as the invited address and joins
 *   (POST /v1/auth/invitations/join). A link never sets the password of an existing account.
 */
import { useEffect, useId, useState, type FormEvent } from 'react';
import { request, type InvitationSummary, type Me } from '../api';
import { ErrorAlert, Loading } from '../components/Feedback';
import { usePageTitle, useAction } from '../hooks';
import { Link } from '../router';

function takeToken(): string {
  const params = new URLSearchParams(window.location.search);
  const token = params.get('token') ?? '';
  if (token) window.history.replaceState(null, '', window.location.pathname);
  return token;
}

let initialToken: string | null = null;

type Phase =
  | { kind: 'loading' }
  | { kind: 'failed'; error: unknown }
  | { kind: 'ready'; invitation: InvitationSummary; me: Me | null }
  | { kind: 'done'; invitation: InvitationSummary };

async function currentUser(): Promise<Me | null> {
  return request<Me>('GET', '/v1/auth/me', { quiet401: true }).catch(() => null);
}

export function AcceptInvitationPage() {
  usePageTitle('Accept invitation');
  const [token] = useState(() => (initialToken ??= takeToken()));
  const [phase, setPhase] = useState<Phase>({ kind: 'loading' });

  useEffect(() => {
    if (!token) return;
    let live = true;
    void (async () => {
      try {
        const invitation = await request<InvitationSummary>('POST', '/v1/auth/invitations/inspect', { body: { token }, quiet401: true });
        const me = invitation.accountExists ? await currentUser() : null;
        if (live) setPhase({ kind: 'ready', invitation, me });
      } catch (error) {
        if (live) setPhase({ kind: 'failed', error });
      }
    })();
    return () => {
      live = false;
    };
  }, [token]);

  return (
    <div className="signin-page">
      <main className="signin-card">
        <h1>Accept invitation</h1>
        {!token ? (
          <div role="alert" className="alert alert-error">
            This invitation link has no token. Open the link from your invitation again.
          </div>
        ) : phase.kind === 'loading' ? (
          <Loading />
        ) : phase.kind === 'failed' ? (
          <ErrorAlert error={phase.error} />
        ) : phase.kind === 'done' ? (
          <>
            <p role="status">
              You are a member of {phase.invitation.organizationName} now, as {phase.invitation.role}.
            </p>
            <p>
              <a href="/admin">Open Paygate</a>
            </p>
          </>
        ) : (
          <>
            <p>
              You are invited to join <strong>{phase.invitation.organizationName}</strong> as {phase.invitation.role}, with the address{' '}
              <strong>{phase.invitation.email}</strong>.
            </p>
            {phase.invitation.accountExists ? (
              <JoinAsMember token={token} invitation={phase.invitation} me={phase.me} onSignedOut={() => setPhase({ ...phase, me: null })} onDone={() => setPhase({ kind: 'done', invitation: phase.invitation })} />
            ) : (
              <ChoosePassword token={token} invitation={phase.invitation} onDone={() => setPhase({ kind: 'done', invitation: phase.invitation })} />
            )}
          </>
        )}
      </main>
    </div>
  );
}

function ChoosePassword({ token, invitation, onDone }: { token: string; invitation: InvitationSummary; onDone: () => void }) {
  const id = useId();
  const [password, setPassword] = useState('');
  const [confirm, setConfirm] = useState('');
  const { busy, error, setError, run } = useAction();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    if (password !== confirm) {
      setError(new Error('The two passwords differ.'));
      return;
    }
    await run(async () => {
      await request('POST', '/v1/auth/invitations/accept', { body: { token, password }, quiet401: true });
      // Signed in at once: the new account has just chosen this password.
      await request('POST', '/v1/auth/login', { body: { email: invitation.email, password }, quiet401: true });
      onDone();
    });
  };

  return (
    <form onSubmit={submit} className="form-stack" noValidate>
      <p>Choose a password for your new Paygate account: at least 10 characters, and not a commonly used one.</p>
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
        Set password and join
      </button>
    </form>
  );
}

function JoinAsMember({
  token,
  invitation,
  me,
  onSignedOut,
  onDone,
}: {
  token: string;
  invitation: InvitationSummary;
  me: Me | null;
  onSignedOut: () => void;
  onDone: () => void;
}) {
  const id = useId();
  const [password, setPassword] = useState('');
  const { busy, error, run } = useAction();
  const join = () => request('POST', '/v1/auth/invitations/join', { body: { token }, quiet401: true });

  if (me && me.user.email.toLowerCase() === invitation.email.toLowerCase()) {
    return (
      <div className="form-stack">
        <ErrorAlert error={error} />
        <button type="button" className="button button-primary button-block" disabled={busy} onClick={() => void run(async () => {
          await join();
          onDone();
        })}>
          Accept invitation
        </button>
      </div>
    );
  }
  if (me) {
    return (
      <div className="form-stack">
        <div role="alert" className="alert alert-info">
          You are signed in as {me.user.email}. This invitation is for {invitation.email}: sign out, then sign in with that address to accept it.
        </div>
        <ErrorAlert error={error} />
        <button type="button" className="button button-secondary button-block" disabled={busy} onClick={() => void run(async () => {
          await request('POST', '/v1/auth/logout', { quiet401: true });
          onSignedOut();
        })}>
          Sign out
        </button>
      </div>
    );
  }

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    await run(async () => {
      await request('POST', '/v1/auth/login', { body: { email: invitation.email, password }, quiet401: true });
      await join();
      onDone();
    });
  };

  return (
    <form onSubmit={submit} className="form-stack" noValidate>
      <p>This address already has a Paygate account: sign in to accept.</p>
      <ErrorAlert error={error} />
      <div className="field">
        <label htmlFor={`${id}-email`}>Email</label>
        <input id={`${id}-email`} type="email" autoComplete="username" value={invitation.email} readOnly />
      </div>
      <div className="field">
        <label htmlFor={`${id}-password`}>Password</label>
        <input id={`${id}-password`} type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} />
      </div>
      <button type="submit" className="button button-primary button-block" disabled={busy}>
        Sign in and accept
      </button>
      <p className="hint">
        <Link to="/reset-password">Forgot your password?</Link>
      </p>
    </form>
  );
}
