import { useCallback, useMemo, useState } from "preact/hooks";
import { createApi, storedKey, storeKey } from "./api.js";
import { CreateForm } from "./create-form.js";
import { DeploymentList } from "./deployment-list.js";
import { DeploymentPage } from "./deployment-page.js";
import { isUnauthenticated } from "./errors.js";
import { KeyForm } from "./key-form.js";
import { Link } from "./link.js";
import { routeOf, usePath } from "./router.js";

export function App() {
  const [key, setKey] = useState(storedKey);
  const [authError, setAuthError] = useState<unknown>(undefined);
  const path = usePath();
  const api = useMemo(() => (key === undefined ? undefined : createApi(key)), [key]);
  const signOut = useCallback((err?: unknown) => {
    storeKey(undefined);
    setKey(undefined);
    setAuthError(err);
  }, []);
  // A key the API does not know (or no longer knows) sends the page back to the key form.
  const onCallError = useCallback((err: unknown) => isUnauthenticated(err) && signOut(err), [signOut]);
  const route = routeOf(path);
  return (
    <>
      <header>
        <Link href="/" class="brand">
          modeldeploy
        </Link>
        {api && (
          <nav>
            <Link href="/">Deployments</Link>
            <Link href="/new">New deployment</Link>
            <button type="button" class="link" onClick={() => signOut()}>
              Sign out
            </button>
          </nav>
        )}
      </header>
      <main>
        {api === undefined ? (
          <KeyForm
            error={authError}
            onKey={(k) => {
              storeKey(k);
              setAuthError(undefined);
              setKey(k);
            }}
          />
        ) : route.view === "new" ? (
          <CreateForm api={api} onCallError={onCallError} />
        ) : route.view === "deployment" ? (
          <DeploymentPage key={route.name} api={api} name={route.name} onCallError={onCallError} />
        ) : (
          <DeploymentList api={api} onCallError={onCallError} />
        )}
      </main>
    </>
  );
}
