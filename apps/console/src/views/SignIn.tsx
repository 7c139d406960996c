import { useState, type FormEvent } from "react";
import { verifyToken } from "../data/client";
import { ErrorNote, useAction } from "../components/feedback";
import { useSession } from "../session";

export function SignIn() {
  const { signIn, endedBecause } = useSession();
  const [token, setToken] = useState("");
  const action = useAction();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const t = token.trim();
    if (await action.run(() => verifyToken(t))) signIn(t);
  };

  return (
    <main id="main" className="signin">
      <form onSubmit={(e) => void submit(e)} aria-labelledby="signin-title" noValidate>
        <h1 id="signin-title">Flotilla console</h1>
        <p>
          Sign in with an API token. The first start of the control plane writes the admin token to{" "}
          <code>~/.config/flotilla/config.json</code>; <code>ctl token create NAME</code> makes more.
        </p>
        {endedBecause && !action.error && (
          <p className="error" role="alert">
            Signed out: {endedBecause}
          </p>
        )}
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          required
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-describedby={action.error ? "signin-error" : undefined}
          aria-invalid={action.error ? true : undefined}
        />
        <ErrorNote error={action.error} id="signin-error" />
        <button type="submit" className="primary" disabled={action.busy || !token.trim()}>
          {action.busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
