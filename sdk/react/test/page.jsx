// The test page for tests/tests/react_component.rs: <RelayConnect> from this package's built
// dist/, in React's strict mode, bundled with esbuild. The test passes Relay's URL, the app id and
// two registration tokens in the query string; the page shows what the callbacks received.
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { RelayConnect } from '../dist/esm/index.js';

const q = new URLSearchParams(location.search);

function Page() {
  const [shown, setShown] = useState(true);
  const [token, setToken] = useState(q.get('token'));
  const [result, setResult] = useState('');
  const [errors, setErrors] = useState([]);
  return (
    <main>
      <button id="swap" type="button" onClick={() => setToken(q.get('token2'))}>new token</button>
      <button id="toggle" type="button" onClick={() => setShown((s) => !s)}>{shown ? 'unmount' : 'mount'}</button>
      <p id="result">{result}</p>
      <p id="errors">{errors.join(' ')}</p>
      {shown && (
        <RelayConnect
          id="connect"
          appId={q.get('app')}
          registrationToken={token}
          relayUrl={q.get('relay')}
          theme="dark"
          lang="ko"
          // A new function on every render: must not re-mount the widget.
          onSuccess={({ provider, fingerprint }) => setResult(`${provider} ${fingerprint}`)}
          onError={({ code }) => setErrors((e) => [...e, code])}
        />
      )}
    </main>
  );
}

createRoot(document.getElementById('root')).render(<StrictMode><Page /></StrictMode>);
