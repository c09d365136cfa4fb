// Log in with a Kiln user's name and password (the password grant of the cf client, as `cf login` does).
import { useState } from 'preact/hooks';
import { html } from '../html.js';
import { login } from '../api.js';

export function LoginPage() {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await login(username, password);
    } catch (err) {
      setError(err.status === 401 ? 'Those credentials were rejected. Check the user name and password.' : err.message);
      setBusy(false);
    }
  };
  return html`<section class="login card">
    <h1>Log in to Kiln</h1>
    <p class="muted">Use a Kiln user. The first start printed the admin's password and keeps it in <code>.kiln/initial-admin-password</code>.</p>
    <form onSubmit=${submit}>
      <label>User name<input name="username" autocomplete="username" required value=${username} onInput=${(e) => setUsername(e.currentTarget.value)} /></label>
      <label>Password<input name="password" type="password" autocomplete="current-password" required value=${password} onInput=${(e) => setPassword(e.currentTarget.value)} /></label>
      ${error ? html`<div class="error" role="alert">${error}</div>` : null}
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Logging in…' : 'Log in'}</button>
    </form>
  </section>`;
}
