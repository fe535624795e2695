// The page: sign in (fake), mount Relay's widget with a registration token from our backend,
// then ask a question and show the answer as it streams in.
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const res = await fetch(path, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error ?? `HTTP ${res.status}`);
  return res;
}

async function showUser() {
  const me = await (await api('/api/me')).json();
  $('sign-in').hidden = true;
  $('signed-in').hidden = false;
  $('who').textContent = me.user;
  $('keys').textContent = me.providers.join(', ') || 'none yet';
  await mountWidget();
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const s = Object.assign(document.createElement('script'), { src, onload: resolve, onerror: reject });
    document.head.append(s);
  });
}

async function mountWidget() {
  const { registrationToken, appId, relayUrl } = await (await api('/api/registration-token', {})).json();
  if (!window.Relay) await loadScript(`${relayUrl}/widget.js`);
  window.Relay.mount('#connect', {
    appId,
    registrationToken,
    onSuccess: ({ provider, fingerprint }) => { $('keys').textContent = `${provider} ${fingerprint}`; },
    onError: ({ message }) => console.warn('widget:', message),
  });
}

$('sign-in').addEventListener('submit', async (e) => {
  e.preventDefault();
  await api('/api/sign-in', { name: $('name').value });
  await showUser();
});

$('ask').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('answer');
  out.textContent = '';
  delete out.dataset.done;
  try {
    const res = await api('/api/chat', { message: $('question').value });
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.textContent += value;
    }
    out.dataset.done = 'true';
  } catch (err) {
    out.textContent = `Error: ${err.message}`;
  }
});

showUser().catch(() => {}); // not signed in yet: the sign-in form stays
